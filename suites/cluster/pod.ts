/**
 * Pod metadata on a trigger's events: every event tied to the trigger (by its marker)
 * must name the pod bpfgate ran it in: namespace, pod, container, image, the labels it
 * set, and the workload (a bare pod is its own workload, kind Pod: Tetragon v1.5.0's
 * podhelpers.GetWorkloadMetaFromPod). Events without a pod are the field's silent
 * failure (a stale CRI socket, a container the agent never mapped): `pod-metadata-missing`,
 * with the event as evidence. Pure: the cluster adapter hands it what it saw.
 */
import type { CheckDraft } from '../../core/check.js';
import { summarizeEvent, type TetragonEvent } from '../tetragon/events.js';
import { markerOf, podDifferences } from '../tetragon/match.js';
import type { PodPredicate, Trigger } from '../triggers/model.js';

/** The pod a trigger ran in, as the cluster reported it when it ended. */
export interface TriggerPod {
  namespace: string;
  name: string;
  container: string;
  /** The image as the runtime reports it in the pod's status (what Tetragon exports). */
  image: string;
  labels: Record<string, string>;
  phase: string;
  exitCode?: number;
  /** The API server refused the pod: its words. */
  refused?: string;
  /** A gated pod (CRI lookup on): what it waited for before its steps ran. */
  released?: { runningAfterMs?: number; releasedAfterMs?: number; criResolutions?: { atCreate?: number; atRelease?: number }; gate: string };
}

/** What the trigger's events must say of their pod. */
export function expectedPod(pod: TriggerPod): PodPredicate {
  return { namespace: pod.namespace, name: pod.name, container: pod.container, image: pod.image, labels: pod.labels, workload: pod.name, workload_kind: 'Pod' };
}

export function judgePodMetadata(trigger: Trigger, pod: TriggerPod | undefined, events: readonly TetragonEvent[]): Omit<CheckDraft, 'source'> {
  const base = { subject: trigger.id, check: 'pod-metadata', durationMs: 0 };
  if (!pod || pod.refused) {
    return { ...base, status: 'error', reason: 'infra-cluster-unreachable', evidence: { why: pod?.refused ? `the API server refused the trigger pod: ${pod.refused}` : 'the trigger pod was never created' } };
  }
  const mine = events.filter((e) => markerOf(e, [trigger.marker]) === trigger.marker);
  const expected = expectedPod(pod);
  if (mine.length === 0) {
    return { ...base, status: 'skip', reason: 'untested', evidence: { why: `no event carries ${trigger.marker}: nothing to read pod metadata from`, pod: `${pod.namespace}/${pod.name}` } };
  }
  const podless = mine.filter((e) => !e.process?.pod);
  if (podless.length > 0) {
    return {
      ...base,
      status: 'fail',
      reason: 'pod-metadata-missing',
      evidence: { expected, events: mine.length, withoutPod: podless.length, first: summarizeEvent(podless[0]!), raw: podless[0]!.raw },
    };
  }
  const wrong = mine.map((e) => ({ e, differences: podDifferences(expected, e) })).filter((x) => x.differences.length > 0);
  if (wrong.length > 0) {
    return { ...base, status: 'fail', reason: 'event-mismatch', evidence: { expected, events: mine.length, mismatched: wrong.length, differences: wrong[0]!.differences, first: summarizeEvent(wrong[0]!.e) } };
  }
  return { ...base, status: 'pass', reason: null, evidence: { pod: expected, events: mine.length, container: mine[0]!.process?.pod?.container?.id } };
}

/** A container runtime restarted on a node (the K3s socket scenario), as the cluster showed it. */
export interface RuntimeRestart {
  how: 'containerd' | 'k3s';
  /** The runtime's socket on the node. */
  socket: string;
  startedAt: string;
  endedAt: string;
  /** How the restarting pod ended. */
  pod: string;
  /** The socket's inode as the node sees it: a restart makes a new one (unknown: why). */
  inode: { before: number; after: number } | { unknown: string };
  /** `stat -c %i` of the socket inside the agent's container: a mount of the file keeps the old one. */
  agentSees: { before: string; after: string };
}

/**
 * The pod metadata of a trigger run again after the runtime restarted. Missing metadata
 * after a restart that made a new socket inode, while the agent still sees the old one
 * with its CRI lookup on, is the K3s socket bug itself: `cri-socket-stale`, with the
 * agent's own `criResolve failed` lines and the inodes as evidence.
 */
export function judgeAfterRestart(check: Omit<CheckDraft, 'source'>, restart: RuntimeRestart, agentLog: string, criLookup: boolean): Omit<CheckDraft, 'source'> {
  const criResolveFailed = agentLog.split('\n').filter((l) => l.includes('criResolve failed')).slice(-5);
  const inode = 'before' in restart.inode ? restart.inode : undefined;
  const newInode = inode !== undefined && inode.before !== inode.after;
  const agentStale = inode !== undefined && restart.agentSees.before === restart.agentSees.after && String(inode.before) === restart.agentSees.before;
  const evidence = { ...check.evidence, restart, ...(criResolveFailed.length ? { criResolveFailed } : {}) };
  const stale = check.reason === 'pod-metadata-missing' && criLookup && newInode && agentStale;
  return { ...check, check: 'pod-metadata:after-runtime-restart', ...(stale ? { reason: 'cri-socket-stale' as const } : {}), evidence };
}
