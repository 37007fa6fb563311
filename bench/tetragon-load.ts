/**
 * Benchmark: what a Tetragon policy load costs in a guest, against a raw QEMU boot of
 * the same kernel, in one run. One boot of the tetragon-vm lane with the given
 * policies (default: six tetragon-examples, 1-6 program sets each) and one trigger;
 * it reports guest seconds per BPF program set the agent loaded, the figure the lane
 * plans its boots with (suites/tetragon/boots.ts, TCG_SECONDS_PER_PROGRAM_SET).
 *
 *   npm run build && node dist/bench/tetragon-load.js --bundle tetragon-v1.5.0-amd64.tar.gz [--cell x86_64-6.12]
 *     [--policies a.yaml,b.yaml] [--agent-args "--disable-kprobe-multi"]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { planCells } from '../cli/commands/run.js';
import { EventBus } from '../core/events.js';
import { ResultStore } from '../core/results-store.js';
import { readPolicies } from '../policy/index.js';
import { RAW_DONE_MARKER } from '../runners/qemu/accel.js';
import { bootableCell, kernelFacts } from '../runners/qemu/platform.js';
import { bootGuest } from '../runners/qemu/vm.js';
import { runMatrix } from '../runners/orchestrator.js';
import { loadBundle } from '../suites/tetragon/bundle.js';
import { programSets, TCG_SECONDS_PER_PROGRAM_SET } from '../suites/tetragon/boots.js';
import { tetragonSuite } from '../suites/tetragon/index.js';
import { loadTriggerCatalogue } from '../suites/triggers/load.js';
import { measure, seconds, table } from './measure.js';

const EXAMPLES = ['lsm_file_open.yaml', 'security-socket-connect.yaml', 'sys_ptrace.yaml', 'tcp-connect.yaml', 'filename_monitoring.yaml', 'rawtp.yaml'];
const { values } = parseArgs({
  options: {
    bundle: { type: 'string', default: process.env.BPFGATE_TETRAGON_BUNDLE },
    cell: { type: 'string', default: 'x86_64-6.12' },
    policies: { type: 'string', default: EXAMPLES.map((f) => `../shared/corpus/tetragon-examples/${f}`).join(',') },
    schema: { type: 'string', default: '../shared/corpus/crd' },
    'agent-args': { type: 'string', default: '--disable-kprobe-multi' },
  },
});
if (!values.bundle) throw new Error('give a Tetragon release bundle: --bundle tetragon-vX.Y.Z-amd64.tar.gz (or BPFGATE_TETRAGON_BUNDLE)');

const cells = await planCells(undefined, values.cell);
const cell = cells[0]!;
const prepared = await bootableCell(cell, (await kernelFacts(cell)).kernel); // warm cache: downloads are not measured
const { accel } = prepared.accel;
const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-tetragon-bench-'));

const raw = await measure(() =>
  bootGuest({
    arch: cell.arch, kernel: prepared.kernelImage, initrd: prepared.baseInitrd, append: [...cell.bootArgs, 'rdinit=/raw-init'],
    accel, timeoutMs: 120_000, serialLog: join(scratch, 'raw.log'), doneMarker: RAW_DONE_MARKER,
  }),
);
if (raw.result.status !== 'done') throw new Error(`raw boot of ${cell.id} did not finish: ${raw.result.status}`);

const { documents } = await readPolicies(values.policies!.split(','), { schema: values.schema! });
const agentArgs = values['agent-args']!.split(/\s+/).filter(Boolean);
const triggers = (await loadTriggerCatalogue()).filter((t) => t.id === 't1003-008-etc-passwd-and-shadow');
const suite = tetragonSuite(triggers, [await loadBundle(values.bundle)], { agentArgs, boots: 1 });
const out = join(scratch, 'out');
const lane = await measure(async () => {
  using store = ResultStore.open(out);
  const bus = new EventBus().on(store.listener);
  return await runMatrix({ cells, suites: [suite], documents, outDir: out, store, bus, jobs: 1 });
});

const loads = lane.result.results.filter((r) => r.check === 'tetragon:load');
const loaded = documents.flatMap((d) => (d.policy && loads.some((l) => l.source?.file === d.file && l.status === 'pass') ? [d.policy] : []));
const sets = loaded.reduce((n, p) => n + programSets(p, false), 0);
const waited = Math.max(...loads.map((l) => Number(l.evidence.waitedS) || 0));
process.stdout.write(`${table([
  ['cell', 'raw boot s', 'lane boot s', 'ratio', 'policies loaded', 'program sets', 'agent start + loads s', 's per set (upper bound)', 'planned s per set'],
  [cell.id, seconds(raw.stats.wallMs), seconds(lane.stats.wallMs), (lane.stats.wallMs / raw.stats.wallMs).toFixed(1), `${loaded.length}/${loads.length}`, sets, waited.toFixed(1), sets ? (waited / sets).toFixed(1) : '-', TCG_SECONDS_PER_PROGRAM_SET[cell.arch]],
])}\n`);
process.stdout.write(`peak memory: QEMU ${raw.stats.qemuPeakMiB.toFixed(0)} MiB raw / ${lane.stats.qemuPeakMiB.toFixed(0)} MiB with the agent; bpfgate ${lane.stats.selfPeakMiB.toFixed(0)} MiB\n`);
await rm(scratch, { recursive: true, force: true });
