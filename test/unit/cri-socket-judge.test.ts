/**
 * cri-socket-stale, judged from observation objects (suites/repro/cri-socket.ts): the file
 * mount shows, the directory mount does not, a fixed runtime is "not reproduced", and
 * anything without a real restart or working calls before it is an error, never a pass.
 * Also the pure pieces of the private containerd: its config edits and the proto stripping.
 */
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { InfraError } from '../../core/errors.js';
import { reproVerdict } from '../../cli/commands/repro.js';
import { containerdConfig, patchToml } from '../../runners/containerd/config.js';
import { stripGogoproto } from '../../runners/containerd/cri.js';
import type { ContainerView, MountObservation, SocketRestartObservations } from '../../runners/containerd/stale-socket.js';
import { CRI_SOCKET_STALE, judgeSocketRestart } from '../../suites/repro/cri-socket.js';

const SOCK = '/run/k3s/containerd/containerd.sock';
const REFUSED_CTR = `ctr: failed to dial "${SOCK}": connection error: desc = "transport: error while dialing: dial unix ${SOCK}: connect: connection refused"`;
const refusedCri = (pid: number) => `UNAVAILABLE (14): No connection established. Last error: Error: connect ECONNREFUSED /proc/${pid}/root${SOCK}`;

const answers = (inode: number): ContainerView => ({
  inode,
  ctr: { ok: true, exitCode: 0, output: 'Client:; Version: 1.6.20~ds1; Server:; Version: 1.6.20~ds1' },
  cri: { ok: true, output: 'containerd 1.6.20~ds1 (CRI v1)' },
});
const refused = (inode: number, pid: number): ContainerView => ({
  inode,
  ctr: { ok: false, exitCode: 1, error: REFUSED_CTR },
  cri: { ok: false, error: refusedCri(pid) },
});

function mount(kind: 'file' | 'directory', before: ContainerView, after: ContainerView): MountObservation {
  const pid = kind === 'file' ? 101 : 202;
  return {
    kind,
    mount: kind === 'file' ? { hostPath: SOCK, containerPath: SOCK } : { hostPath: '/run/k3s/containerd', containerPath: '/run/k3s/containerd' },
    socketPath: SOCK,
    container: { name: kind === 'file' ? 'file-mount' : 'dir-mount', id: `${kind}-id`, pid },
    before,
    after,
    stateAfterRestart: 'CONTAINER_RUNNING',
  };
}

/** What K3s's restart does: a new inode (7 -> 34); the file mount keeps 7 and is refused, the directory sees 34. */
function observations(over: Partial<SocketRestartObservations> = {}, mounts?: MountObservation[]): SocketRestartObservations {
  return {
    socketPath: SOCK,
    socketInode: { before: 7, after: 34 },
    socketRemovedOnStop: true,
    containerdPid: { before: 1000, after: 2000 },
    containerd: '1.6.20~ds1',
    runc: '1.1.5+ds1',
    namespace: 'mnt:[4026532176]',
    cgroupParent: '/bpfgate-containerd-abc',
    images: { pause: 'registry.k8s.io/pause:3.10.1', client: 'localhost/bpfgate/cri-client:1', packages: [] },
    mounts: mounts ?? [mount('file', answers(7), refused(7, 101)), mount('directory', answers(7), answers(34))],
    ...over,
  };
}

const byCheck = (drafts: ReturnType<typeof judgeSocketRestart>) => Object.fromEntries(drafts.map((d) => [d.check, d]));

describe('judging cri-socket-stale', () => {
  it('says the file mount shows the bug (pass, reason cri-socket-stale) and the directory mount does not (pass, no reason)', () => {
    const { 'repro:file-mount': file, 'repro:dir-mount': dir } = byCheck(judgeSocketRestart(observations(), 1234));
    expect(file).toMatchObject({ subject: 'cri-socket-stale', status: 'pass', reason: 'cri-socket-stale', durationMs: 1234 });
    expect(file?.evidence).toMatchObject({
      expected: 'shows',
      observed: 'shows',
      verdict: 'reproduced',
      socketInode: { before: 7, after: 34 },
      containerSees: { before: 7, after: 7 },
      calls: { before: { ctr: { ok: true }, cri: { ok: true } }, after: { ctr: { ok: false, exitCode: 1, error: REFUSED_CTR }, cri: { ok: false, error: refusedCri(101) } } },
      containerd: '1.6.20~ds1',
      runc: '1.1.5+ds1',
    });
    expect(dir).toMatchObject({ status: 'pass', reason: null });
    expect(dir?.evidence).toMatchObject({ expected: 'absent', observed: 'absent', verdict: 'absent as expected', containerSees: { before: 7, after: 34 } });
  });

  it('fails the file mount where the runtime keeps its socket reachable (not reproduced)', () => {
    const obs = observations({}, [mount('file', answers(7), answers(34)), mount('directory', answers(7), answers(34))]);
    const { 'repro:file-mount': file } = byCheck(judgeSocketRestart(obs));
    expect(file).toMatchObject({ status: 'fail', reason: 'cri-socket-stale', evidence: { expected: 'shows', observed: 'absent', verdict: 'not reproduced' } });
  });

  it('fails the directory mount if it went stale too', () => {
    const obs = observations({}, [mount('file', answers(7), refused(7, 101)), mount('directory', answers(7), refused(7, 202))]);
    expect(byCheck(judgeSocketRestart(obs))['repro:dir-mount']).toMatchObject({ status: 'fail', reason: 'cri-socket-stale', evidence: { observed: 'shows' } });
  });

  it('calls it inconclusive (an error, never a pass) when the restart made no new inode', () => {
    const drafts = judgeSocketRestart(observations({ socketInode: { before: 7, after: 7 } }, [mount('file', answers(7), refused(7, 101)), mount('directory', answers(7), answers(7))]));
    for (const d of drafts) expect(d).toMatchObject({ status: 'error', reason: 'infra-runtime', evidence: { observed: 'inconclusive', why: expect.stringMatching(/kept inode 7/) } });
  });

  it('calls it inconclusive when the calls already failed before the restart', () => {
    const obs = observations({}, [mount('file', refused(7, 101), refused(7, 101)), mount('directory', answers(7), answers(34))]);
    const { 'repro:file-mount': file, 'repro:dir-mount': dir } = byCheck(judgeSocketRestart(obs));
    expect(file).toMatchObject({ status: 'error', reason: 'infra-runtime', evidence: { observed: 'inconclusive' } });
    expect(dir).toMatchObject({ status: 'pass' });
  });

  it('does not take a failure other than "connection refused" for the bug', () => {
    const other: ContainerView = { inode: 7, ctr: { ok: false, exitCode: 1, error: 'ctr: context deadline exceeded' }, cri: { ok: false, error: 'DEADLINE_EXCEEDED (4): Deadline exceeded' } };
    const obs = observations({}, [mount('file', answers(7), other), mount('directory', answers(7), answers(34))]);
    expect(byCheck(judgeSocketRestart(obs))['repro:file-mount']).toMatchObject({ status: 'error', evidence: { observed: 'inconclusive' } });
  });

  it('needs both calls to agree: a refused ctr with an answering CRI call decides nothing', () => {
    const half: ContainerView = { ...refused(7, 101), cri: { ok: true, output: 'containerd' } };
    const obs = observations({}, [mount('file', answers(7), half), mount('directory', answers(7), answers(34))]);
    expect(byCheck(judgeSocketRestart(obs))['repro:file-mount']).toMatchObject({ status: 'error' });
  });

  it('charges a missing observation to the runtime', () => {
    const obs = observations({}, [mount('file', answers(7), refused(7, 101))]);
    expect(byCheck(judgeSocketRestart(obs))['repro:dir-mount']).toMatchObject({ status: 'error', reason: 'infra-runtime' });
  });
});

describe('bpfgate repro output for cri-socket-stale', () => {
  const results = (drafts: ReturnType<typeof judgeSocketRestart>): CheckResult[] =>
    drafts.map((d) => ({ cell: 'host-containerd', lane: 'runtime', suite: 'repro', ...d }));

  it('says reproduced with the inode lines and the refused calls', () => {
    const verdict = reproVerdict(CRI_SOCKET_STALE, results(judgeSocketRestart(observations())));
    expect(verdict.reproduced).toBe(true);
    const text = verdict.lines.join('\n');
    expect(text).toMatch(/^cri-socket-stale: reproduced — /);
    expect(text).toContain('shows on host-containerd repro:file-mount: socket inode 7 before the restart, 34 after; the container sees 7 before, 7 after');
    expect(text).toContain(`after the restart, ctr in the container: exit 1: ${REFUSED_CTR}`);
    expect(text).toContain('absent on host-containerd repro:dir-mount: socket inode 7 before the restart, 34 after; the container sees 7 before, 34 after');
  });

  it('says NOT reproduced when a check failed or erred', () => {
    const obs = observations({}, [mount('file', answers(7), answers(34)), mount('directory', answers(7), answers(34))]);
    expect(reproVerdict(CRI_SOCKET_STALE, results(judgeSocketRestart(obs))).lines[0]).toMatch(/^cri-socket-stale: NOT reproduced/);
  });
});

describe("the private containerd's configuration", () => {
  const DEFAULT = [
    'root = "/var/lib/containerd"',
    'state = "/run/containerd"',
    '[grpc]',
    '  address = "/run/containerd/containerd.sock"',
    '[plugins]',
    '  [plugins."io.containerd.grpc.v1.cri"]',
    '    restrict_oom_score_adj = false',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '      BinaryName = ""',
    '      SystemdCgroup = false',
  ].join('\n');

  it('sets a key only in its own section, keeping the indentation', () => {
    const out = patchToml(DEFAULT, [
      { section: 'grpc', key: 'address', value: SOCK },
      { section: 'plugins."io.containerd.grpc.v1.cri"', key: 'restrict_oom_score_adj', value: true },
      { section: 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options', key: 'BinaryName', value: '/usr/sbin/runc' },
      { section: '', key: 'root', value: '/x/root' },
    ]);
    expect(out.split('\n')).toEqual([
      'root = "/x/root"',
      'state = "/run/containerd"',
      '[grpc]',
      `  address = "${SOCK}"`,
      '[plugins]',
      '  [plugins."io.containerd.grpc.v1.cri"]',
      '    restrict_oom_score_adj = true',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '      BinaryName = "/usr/sbin/runc"',
      '      SystemdCgroup = false',
    ]);
  });

  it('refuses a key the default configuration does not have there', () => {
    expect(() => patchToml(DEFAULT, [{ section: 'grpc', key: 'root', value: 'x' }])).toThrow(InfraError);
  });

  it("applies every setting to the installed containerd's own default configuration", async () => {
    const def = await execa('containerd', ['config', 'default'], { env: { PATH: `${process.env.PATH}:/usr/sbin` } });
    const text = containerdConfig(def.stdout, { data: '/s/data', socket: SOCK, sandboxImage: 'registry.k8s.io/pause:3.10.1', runc: '/usr/sbin/runc' });
    expect(text).toContain(`address = "${SOCK}"`);
    expect(text).toContain('restrict_oom_score_adj = true');
    expect(text).toContain('sandbox_image = "registry.k8s.io/pause:3.10.1"');
    expect(text).toContain('path = "/s/data/opt"');
    expect(text).not.toMatch(/"\/(etc\/cni|opt\/cni|var\/lib\/containerd|opt\/containerd)/);
  });
});

describe('the CRI api.proto', () => {
  it('loses its gogoproto import and options, nothing else', () => {
    const text = [
      'syntax = "proto3";',
      'package runtime.v1;',
      'import "github.com/gogo/protobuf/gogoproto/gogo.proto";',
      'option (gogoproto.marshaler_all) = true;',
      'message X { string a = 1 [(gogoproto.nullable) = false]; }',
    ].join('\n');
    expect(stripGogoproto(text)).toBe(['syntax = "proto3";', 'package runtime.v1;', 'message X { string a = 1; }'].join('\n'));
  });
});
