/**
 * cri-socket-stale, judged (pure). K3s restarts containerd on every node restart, and
 * containerd unlinks and re-creates its socket: a new inode. A container that bind-mounted
 * the socket file keeps the dead inode ("connection refused"); one that mounted the
 * socket's directory sees the new socket. The experiment (runners/containerd/stale-socket.ts)
 * records what each container saw before and after a real restart; this turns it into one
 * check per mount kind on the host cell:
 *
 *   repro:file-mount  expected `shows`:  after the restart the container still sees the old
 *                     inode, and both calls from inside (ctr, and CRI through its view of the
 *                     path) are refused
 *   repro:dir-mount   expected `absent`: it sees the new inode and both calls answer
 *
 * Invariants: a verdict needs a real restart (two different socket inodes) and calls that
 * worked before it; anything else is `inconclusive`, an error charged to the runtime, never
 * a pass. The evidence always carries both inodes, the inode each container saw, every
 * call's answer or error text, and the runtime's versions.
 */
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';
import type { CallResult, ContainerView, MountKind, MountObservation, SocketRestartObservations } from '../../runners/containerd/stale-socket.js';
import type { RuntimeBug } from './bugs.js';

type Expectation = 'shows' | 'absent';

/** The check of each mount kind, and what it must find. */
export const MOUNT_CHECKS: Record<MountKind, { check: string; expected: Expectation }> = {
  file: { check: 'repro:file-mount', expected: 'shows' },
  directory: { check: 'repro:dir-mount', expected: 'absent' },
};

/** How Go's net (ctr) and Node (grpc-js) word a refused connect. */
const REFUSED = /connection refused|ECONNREFUSED/i;

const callText = (c: unknown): string => {
  const call = c as { ok?: boolean; answer?: string; error?: string; exitCode?: number } | undefined;
  if (!call) return '?';
  if (call.ok) return 'answers';
  return `${call.exitCode !== undefined ? `exit ${call.exitCode}: ` : ''}${call.error ?? 'failed'}`;
};

export const CRI_SOCKET_STALE: RuntimeBug = {
  kind: 'runtime',
  name: 'cri-socket-stale',
  title: 'a CRI socket bind-mounted as a file goes dead when containerd restarts (a new socket inode); a bind-mounted directory keeps working',
  reason: 'cri-socket-stale',
  checks: [MOUNT_CHECKS.file.check, MOUNT_CHECKS.directory.check],
  summary: (e) => {
    const inode = e.socketInode as { before?: number; after?: number } | undefined;
    const sees = e.containerSees as { before?: number | null; after?: number | null } | undefined;
    const after = (e.calls as { after?: { ctr?: unknown; cri?: unknown } } | undefined)?.after;
    return [
      `socket inode ${inode?.before} before the restart, ${inode?.after} after; the container sees ${sees?.before} before, ${sees?.after} after`,
      `after the restart, ctr in the container: ${callText(after?.ctr)}`,
      `after the restart, CRI Version through the container's path: ${callText(after?.cri)}`,
    ].join('\n');
  },
};

/** The checks the bug plans on its cell. */
export function criSocketPlanned(): PlannedCheck[] {
  return CRI_SOCKET_STALE.checks.map((check) => ({ subject: CRI_SOCKET_STALE.name, check }));
}

/** Every planned check as an error: the experiment could not run (its reason and message as evidence). */
export function criSocketErrors(reason: Reason, message: string, durationMs = 0): CheckDraft[] {
  return criSocketPlanned().map((p) => ({ ...p, status: 'error' as const, reason, evidence: { error: message }, durationMs }));
}

const callEvidence = (c: CallResult) =>
  c.ok ? { ok: true, answer: c.output ?? '' } : { ok: false, ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}), error: c.error ?? '' };

const viewCalls = (v: ContainerView) => ({ ctr: callEvidence(v.ctr), cri: callEvidence(v.cri) });

const refused = (c: CallResult) => !c.ok && REFUSED.test(c.error ?? '');

/** What one mount showed: the bug, its absence, or nothing that decides (with why). */
export function observeMount(obs: SocketRestartObservations, m: MountObservation): { observed: Expectation | 'inconclusive'; why?: string } {
  const { before: oldInode, after: newInode } = obs.socketInode;
  if (oldInode === newInode) return { observed: 'inconclusive', why: `the socket kept inode ${oldInode}: the restart made no new socket` };
  if (!m.before.ctr.ok || !m.before.cri.ok || m.before.inode !== oldInode) {
    return { observed: 'inconclusive', why: `before the restart the container did not reach containerd through the socket (inode ${m.before.inode}, expected ${oldInode})` };
  }
  if (m.after.inode === oldInode && refused(m.after.ctr) && refused(m.after.cri)) return { observed: 'shows' };
  if (m.after.inode === newInode && m.after.ctr.ok && m.after.cri.ok) return { observed: 'absent' };
  return {
    observed: 'inconclusive',
    why: `after the restart the container sees inode ${m.after.inode} (old ${oldInode}, new ${newInode}); ctr ${m.after.ctr.ok ? 'answered' : 'failed'}, CRI ${m.after.cri.ok ? 'answered' : 'failed'}`,
  };
}

/** One check per mount kind from the experiment's observations (see the module comment). */
export function judgeSocketRestart(obs: SocketRestartObservations, durationMs = 0): CheckDraft[] {
  const bug = CRI_SOCKET_STALE;
  return (['file', 'directory'] as const).map((kind): CheckDraft => {
    const { check, expected } = MOUNT_CHECKS[kind];
    const base = { subject: bug.name, check, durationMs };
    const m = obs.mounts.find((x) => x.kind === kind);
    if (!m) return { ...base, status: 'error', reason: 'infra-runtime', evidence: { expected, observed: 'inconclusive', why: `no ${kind} mount was observed` } };
    const { observed, why } = observeMount(obs, m);
    const ok = observed === expected;
    const evidence = {
      expected,
      observed,
      verdict: observed === 'inconclusive' ? 'inconclusive' : ok ? (observed === 'shows' ? 'reproduced' : 'absent as expected') : 'not reproduced',
      ...(why ? { why } : {}),
      mount: { kind, hostPath: m.mount.hostPath, containerPath: m.mount.containerPath },
      socketPath: m.socketPath,
      socketInode: obs.socketInode,
      containerSees: { before: m.before.inode, after: m.after.inode },
      calls: { before: viewCalls(m.before), after: viewCalls(m.after) },
      container: { name: m.container.name, pid: m.container.pid, stateAfterRestart: m.stateAfterRestart ?? 'unknown' },
      socketRemovedOnStop: obs.socketRemovedOnStop,
      containerdPid: obs.containerdPid,
      containerd: obs.containerd,
      runc: obs.runc,
      images: obs.images,
      namespace: obs.namespace,
      cgroupParent: obs.cgroupParent,
    };
    if (observed === 'inconclusive') return { ...base, status: 'error', reason: 'infra-runtime', evidence };
    return { ...base, status: ok ? 'pass' : 'fail', reason: observed === 'shows' || !ok ? bug.reason : null, evidence };
  });
}
