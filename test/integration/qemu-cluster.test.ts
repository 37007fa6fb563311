/**
 * The assembled cluster for real: a control plane on the host and a QEMU node on a
 * Debian kernel, through the platform's own lifecycle (describe, start, run, dispose).
 * Kubernetes binaries cannot be installed from Debian: the test runs where they are given
 * (BPFGATE_KUBERNETES: a directory or release tarball with kube-apiserver,
 * kube-controller-manager, kube-scheduler and a kubelet) and skips, naming them, elsewhere.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CheckDraft } from '../../core/check.js';
import type { PlatformEnv } from '../../core/platform.js';
import { loadMatrix } from '../../matrix/load.js';
import type { KubeCluster, KubeNode, KubeSession } from '../../runners/kube/session.js';
import { QemuClusterPlatform } from '../../runners/qemu-cluster/platform.js';
import { liveGuests } from '../../runners/qemu/vm.js';
import { triggerImage } from '../../suites/cluster/images.js';
import { tempOut } from '../support/cli.js';
import { PROJECT_ROOT } from '../support/shared.js';
import { join } from 'node:path';

const KUBERNETES = process.env.BPFGATE_KUBERNETES;
const missing = !KUBERNETES || !existsSync(KUBERNETES) ? 'set BPFGATE_KUBERNETES to Kubernetes v1.34 binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet)' : undefined;

describe.skipIf(missing)(`an assembled cluster with one x86_64 node${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('boots a node that gets Ready, runs a pod, answers exec and logs, and leaves nothing behind', async () => {
    const out = tempOut('qemu-cluster');
    // The platform's scratch goes under TMPDIR: a directory of this test's, to see it removed.
    const tmp = join(out, 'tmp');
    mkdirSync(tmp);
    process.env.TMPDIR = tmp;
    const cell = (await loadMatrix(join(PROJECT_ROOT, 'matrix', 'cluster.yaml'))).cells.find((c) => c.arch === 'x86_64')!;
    const env: PlatformEnv = {
      outDir: out, signal: new AbortController().signal, slot: (w) => w(), phase: (c, p, d) => console.log(c, p, d ?? ''), log: (_l, m) => console.log(m),
      settings: { kubernetes: KUBERNETES!.split(',') },
    };
    const platform = new QemuClusterPlatform();
    const described = { cell, ...(await platform.describe(cell, { booting: true }, env)) };
    expect(described.facts.node?.name).toMatch(/^127\.0\.\d+\.\d+$/);
    const seen: Record<string, unknown> = {};
    const session: KubeSession = {
      planned: () => [{ subject: 'node', check: 'pod' }],
      nodeImages: async (arch) => [(await triggerImage(arch, 'localhost/bpfgate/trigger:1')).file],
      run: async (node: KubeNode, cluster: KubeCluster, emit: (d: CheckDraft) => void) => {
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hello', namespace: 'default' }, spec: { nodeName: node.name, restartPolicy: 'Never', containers: [{ name: 'c', image: 'localhost/bpfgate/trigger:1', imagePullPolicy: 'Never', command: ['/bin/busybox', 'sh', '-c', 'echo hello from $(uname -m); sleep 30'] }] } };
        expect('applied' in (await cluster.api.apply(pod))).toBe(true);
        const running = await cluster.api.waitFor(async () => ((await cluster.api.get<{ status?: { phase?: string } }>('/api/v1/namespaces/default/pods/hello'))?.status?.phase === 'Running' ? true : undefined), 120_000);
        seen.running = running;
        seen.exec = await cluster.api.exec('default', 'hello', 'c', ['/bin/busybox', 'uname', '-r']);
        seen.logs = await cluster.api.logTail('default', 'hello', 'c');
        emit({ subject: 'node', check: 'pod', status: 'pass', reason: null, evidence: seen, durationMs: 0 });
      },
    };
    const records: CheckDraft[] = [];
    {
      await using started = await platform.start([{ ...described, sessions: [{ suite: 'probe-cluster', lane: 'qemu-cluster', budgetMs: 0, session }] }], env);
      await started.run(described, [{ suite: 'probe-cluster', lane: 'qemu-cluster', budgetMs: 0, session }], { done: () => false, record: (_s, _l, d) => records.push(d), slot: (w) => w() });
    }
    expect(records.map((r) => [r.check, r.status, r.reason])).toEqual([['pod', 'pass', null]]);
    expect(seen.running).toBe(true);
    expect((seen.exec as { stdout: string }).stdout.trim()).toBe(described.facts.kernel.release);
    expect(String(seen.logs)).toContain('hello from x86_64');
    expect(liveGuests()).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
  }, 900_000);
});
