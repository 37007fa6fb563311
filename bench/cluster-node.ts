/**
 * Benchmark: from nothing to a Kubernetes node that is Ready with its Tetragon agent
 * running, per arch, against a raw boot of the same kernel (an init that only powers
 * off), in one run. The nodes boot side by side, as a cluster does: by default three,
 * x86_64, arm64 4K and arm64 16K (bench/cluster-three-nodes.yaml).
 *
 *   npm run build && node dist/bench/cluster-node.js --kubernetes DIR [--matrix F] [--cells GLOB] \
 *     [--tetragon A.tar.gz,B.tar.gz --chart tetragon.tgz --helm helm] [--json FILE]
 *
 * Without a bundle and a chart it measures the nodes up to Ready.
 */
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PlatformEnv } from '../core/platform.js';
import { planCells } from '../cli/commands/run.js';
import { assetPath } from '../core/assets.js';
import { isReady } from '../runners/kube/api.js';
import { helmInstall } from '../runners/kube/helm.js';
import type { StartedCluster } from '../runners/kube/started.js';
import { RAW_DONE_MARKER } from '../runners/qemu/accel.js';
import { bootableCell, kernelFacts } from '../runners/qemu/platform.js';
import { QemuClusterPlatform } from '../runners/qemu-cluster/platform.js';
import { bootGuest } from '../runners/qemu/vm.js';
import { imagesOnly, tetragonTag } from '../suites/cluster/images.js';
import { loadBundle } from '../suites/tetragon/bundle.js';
import { measure, seconds, table } from './measure.js';

const { values } = parseArgs({
  options: {
    kubernetes: { type: 'string' }, matrix: { type: 'string' }, cells: { type: 'string' }, tetragon: { type: 'string' },
    chart: { type: 'string' }, helm: { type: 'string' }, json: { type: 'string' },
  },
});
if (!values.kubernetes) throw new Error('--kubernetes DIR (Kubernetes binaries: control plane for the host, a kubelet per node arch) is needed');
const cells = await planCells(values.matrix ?? assetPath('bench', 'cluster-three-nodes.yaml'), values.cells);
const bundles = await Promise.all((values.tetragon?.split(',') ?? []).map(loadBundle));
const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-bench-cluster-'));

// Raw boots first, one at a time: the same kernels, the kernel lane's base image, an init that powers off.
const raw = new Map<string, number>();
for (const cell of cells) {
  const { kernel } = await kernelFacts(cell);
  const bootable = await bootableCell(cell, kernel);
  const o = await bootGuest({ arch: cell.arch, kernel: kernel.image, initrd: bootable.baseInitrd, append: [...cell.bootArgs, 'rdinit=/raw-init'], accel: bootable.accel.accel, timeoutMs: 120_000, serialLog: join(scratch, `${cell.id}.raw.log`), doneMarker: RAW_DONE_MARKER });
  if (o.status !== 'done') throw new Error(`raw boot of ${cell.id} did not finish: ${o.status}`);
  raw.set(cell.id, o.wallMs);
}

// The cluster: every node at once.
const bootAt = new Map<string, number>();
const env: PlatformEnv = {
  outDir: join(scratch, 'out'), signal: new AbortController().signal, slot: (w) => w(),
  phase: (cell, phase) => {
    if (phase === 'boot') bootAt.set(cell, performance.now());
  },
  log: () => {}, settings: { kubernetes: values.kubernetes.split(',') },
};
const images = imagesOnly(bundles);
const platform = new QemuClusterPlatform();
const described: { cell: (typeof cells)[number]; facts: Awaited<ReturnType<QemuClusterPlatform['describe']>>['facts']; config: ReadonlyMap<string, string> }[] = [];
for (const cell of cells) described.push({ cell, ...(await platform.describe(cell, { booting: true }, env)) });
const nodeReady = new Map<string, number>();
const agentReady = new Map<string, number>();
/** The Node objects as the API server returned them, for the --json record. */
let nodes: unknown[] = [];
const run = await measure(async () => {
  const started = (await platform.start(described.map((d) => ({ ...d, sessions: [{ suite: 'bench', lane: 'qemu-cluster' as const, budgetMs: 0, session: images }] })), env)) as StartedCluster<'qemu-cluster'>;
  try {
    for (const [cell, ms] of Object.entries(started.cluster.readyAfterMs ?? {})) nodeReady.set(cell, ms);
    nodes = await started.cluster.api.list('v1', 'Node');
    if (bundles.length && values.chart) {
      const { api } = started.cluster;
      await helmInstall({
        helm: values.helm ?? 'helm', chart: values.chart, release: 'bench', namespace: 'bench', kubeconfig: started.cluster.kubeconfigFile, valuesFiles: [],
        values: {
          tetragon: { image: { override: tetragonTag(bundles[0]!.version) }, extraEnv: Object.entries(started.cluster.apiserverEnv).map(([name, value]) => ({ name, value })) },
          tetragonOperator: { enabled: false }, crds: { installMethod: 'helm' }, export: { mode: '' },
        },
      });
      await api.waitFor(async () => {
        type P = { metadata: { name: string }; spec?: { nodeName?: string }; status?: { conditions?: { type: string; status: string }[] } };
        for (const p of await api.list<P>('v1', 'Pod', { namespace: 'bench', labelSelector: 'app.kubernetes.io/name=tetragon' })) {
          const d = described.find((x) => x.facts.node?.name === p.spec?.nodeName);
          if (!d || agentReady.has(d.cell.id) || !isReady(p)) continue;
          // Running means answering: the chart has no readiness probe, so its pod is Ready
          // before the agent has loaded its base sensors.
          const r = await api.tryExec('bench', p.metadata.name, 'tetragon', ['tetra', 'status'], { timeoutMs: 20_000 });
          if (r.exitCode === 0) agentReady.set(d.cell.id, performance.now() - bootAt.get(d.cell.id)!);
        }
        return agentReady.size === described.length ? true : undefined;
      }, 600_000, 1000);
    }
  } finally {
    await started[Symbol.asyncDispose]();
  }
});

const rows: (string | number)[][] = [['node', 'raw boot s', 'node Ready s', 'ratio', 'agent serving s']];
for (const d of described) {
  const r = raw.get(d.cell.id)!;
  const n = nodeReady.get(d.cell.id);
  const a = agentReady.get(d.cell.id);
  rows.push([d.cell.id, seconds(r), n === undefined ? 'never' : seconds(n), n === undefined ? '-' : (n / r).toFixed(2), a === undefined ? '-' : seconds(a)]);
}
process.stdout.write(`${table(rows)}\n\n`);
process.stdout.write(`${described.length} nodes side by side; whole run (control plane, images, nodes, agent) ${seconds(run.stats.wallMs)} s; peak memory: QEMU ${run.stats.qemuPeakMiB.toFixed(0)} MiB, bpfgate ${run.stats.selfPeakMiB.toFixed(0)} MiB\n`);
if (values.json) {
  await writeFile(values.json, JSON.stringify({ raw: Object.fromEntries(raw), nodeReady: Object.fromEntries(nodeReady), agentReady: Object.fromEntries(agentReady), stats: run.stats, nodes }, null, 2));
}
await rm(scratch, { recursive: true, force: true });
