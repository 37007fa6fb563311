/**
 * Benchmark: what adding policies costs. One policies-suite cell with the first 10
 * valid corpus policies, then with all of them, same triggers, same cell, in one
 * run. The guest registers one probe per distinct hook, so the cost should grow
 * with distinct hooks, not with policies.
 *
 *   npm run build && node dist/bench/policy-scaling.js [--cell x86_64-6.12] [--policies DIR] [--schema DIR]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EventBus } from '../core/events.js';
import { ResultStore } from '../core/results-store.js';
import { planCells } from '../cli/commands/run.js';
import { readPolicies } from '../policy/index.js';
import { runMatrix } from '../runners/orchestrator.js';
import { bootableCell, kernelFacts } from '../runners/qemu/platform.js';
import { policiesSuite } from '../suites/policies/index.js';
import { loadTriggerCatalogue } from '../suites/triggers/load.js';
import { measure, seconds, table } from './measure.js';

const { values } = parseArgs({
  options: { cell: { type: 'string', default: 'x86_64-6.12' }, policies: { type: 'string', default: '../shared/corpus' }, schema: { type: 'string', default: '../shared/corpus/crd' } },
});
const cells = await planCells(undefined, values.cell);
await bootableCell(cells[0]!, (await kernelFacts(cells[0]!)).kernel); // warm cache: downloads are not measured
const { documents } = await readPolicies([values.policies!], { schema: values.schema! });
const valid = documents.filter((d) => d.policy && d.valid);
const suite = policiesSuite(await loadTriggerCatalogue());
const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-scaling-'));

async function cellRun(label: string, docs: typeof valid) {
  const out = join(scratch, label);
  let hooks = 0;
  const { stats, result } = await measure(async () => {
    using store = ResultStore.open(out);
    const bus = new EventBus().on(store.listener);
    return await runMatrix({ cells, suites: [suite], documents: docs, outDir: out, store, bus, jobs: 1 });
  });
  hooks = new Set(docs.flatMap((d) => d.policy!.hooks.map((h) => h.id))).size;
  const errors = result.results.filter((r) => r.status === 'error').length;
  return { label, policies: docs.length, hooks, stats, errors };
}

const small = await cellRun('10', valid.slice(0, 10));
const all = await cellRun('all', valid);
process.stdout.write(`${table([
  ['policies', 'distinct hooks', 'cell wall s', 'QEMU peak MiB', 'errors'],
  ...[small, all].map((r) => [r.policies, r.hooks, seconds(r.stats.wallMs), r.stats.qemuPeakMiB.toFixed(0), r.errors]),
])}\n\n`);
process.stdout.write(`${values.cell}: from ${small.policies} to ${all.policies} policies adds ${(((all.stats.wallMs - small.stats.wallMs) / small.stats.wallMs) * 100).toFixed(1)}% per cell\n`);
await rm(scratch, { recursive: true, force: true });
