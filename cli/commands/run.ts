/**
 * `bpfgate run`: plan the matrix, read the policies, run the suites, write the
 * output directory, and turn the results into the gate's exit code:
 * 0 all expected; 1 a check failed that the baseline does not expect;
 * 2 bad input; 3 infrastructure error (and nothing worse).
 */
import { resolve } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import { BpfgateError } from '../../core/errors.js';
import { EventBus } from '../../core/events.js';
import { evaluateGate, loadBaseline, type BaselineEntry, type GateResult } from '../../core/baseline.js';
import { ResultStore } from '../../core/results-store.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadMatrix } from '../../matrix/load.js';
import { selectCells } from '../../matrix/select.js';
import type { Cell } from '../../matrix/cell.js';
import { readPolicies } from '../../policy/index.js';
import { writeReports } from '../../reports/index.js';
import { runMatrix } from '../../runners/orchestrator.js';
import { resolveSuites } from '../../suites/registry.js';
import type { Suite } from '../../suites/suite.js';
import { plainProgress, terminalProgress } from '../progress.js';

export interface RunCommandOptions {
  matrix?: string;
  policies: string[];
  suites: string[];
  cells?: string;
  jobs?: number;
  out: string;
  baseline?: string;
  resume: boolean;
  schema?: string;
  lock?: string;
  timeoutSec?: number;
  /** Trigger files or directories replacing the shipped catalogue. */
  triggers?: string[];
  /** Tetragon release bundles for the tetragon suite. */
  tetragon?: string[];
  tetragonArgs?: string[];
  tetragonBoots?: number | 'auto';
  out_stream?: NodeJS.WritableStream;
}

export async function planCells(matrix: string | undefined, cells: string | undefined): Promise<Cell[]> {
  const loaded = matrix ? await loadMatrix(matrix) : await loadDefaultMatrix();
  const selected = cells ? selectCells(loaded.cells, cells) : loaded.cells;
  if (selected.length === 0) {
    throw new BpfgateError('usage', `--cells ${cells} matches none of ${loaded.cells.map((c) => c.id).join(', ')}`);
  }
  return selected;
}

/** Exit code from the gate: an unexpected fail beats an unexpected infra error. */
export function gateExitCode(gate: GateResult, results: CheckResult[]): number {
  if (results.length === 0) return 3; // a run that checked nothing proves nothing
  if (gate.unexpected.some((r) => r.status === 'fail')) return 1;
  if (gate.unexpected.some((r) => r.status === 'error')) return 3;
  return 0;
}

export function printGate(gate: GateResult, results: CheckResult[], out: NodeJS.WritableStream, outDir: string): void {
  const counts = { pass: 0, fail: 0, skip: 0, error: 0 };
  for (const r of results) counts[r.status] += 1;
  out.write(`\n${results.length} checks: ${counts.pass} pass, ${counts.fail} fail, ${counts.error} error, ${counts.skip} skip`);
  out.write(gate.expected.length ? ` (${gate.expected.length} failures expected by the baseline)\n` : '\n');
  const shown = gate.unexpected.slice(0, 25);
  if (shown.length) out.write(`\nUnexpected (${gate.unexpected.length}):\n`);
  for (const r of shown) {
    const where = r.source ? ` ${r.source.file}:${r.source.line}` : '';
    out.write(`  ${r.status.toUpperCase()} ${r.cell} ${r.suite}/${r.subject} ${r.check}: ${r.reason ?? ''}${where}\n`);
  }
  if (gate.unexpected.length > shown.length) out.write(`  … ${gate.unexpected.length - shown.length} more in ${outDir}/table.md\n`);
  for (const entry of gate.fixed) {
    out.write(`note: baseline entry ${entry.where.file}:${entry.where.line} (${entry.cell} ${entry.subject} ${entry.reason}) now passes: remove it\n`);
  }
  out.write(`\nResults: ${outDir}/results.jsonl, junit.xml, table.md, table.html, table.json\n`);
}

function attachProgress(bus: EventBus): Promise<void> {
  if (process.stderr.isTTY && !process.env.CI) {
    const live = terminalProgress();
    bus.on(live.listener);
    return live.done;
  }
  bus.on(plainProgress());
  return Promise.resolve();
}

export async function runCommand(opts: RunCommandOptions): Promise<number> {
  const out = opts.out_stream ?? process.stdout;
  const outDir = resolve(opts.out);
  const suites: Suite[] = await resolveSuites(opts.suites, { triggers: opts.triggers, tetragon: opts.tetragon, tetragonArgs: opts.tetragonArgs, tetragonBoots: opts.tetragonBoots });
  const cells = await planCells(opts.matrix, opts.cells);
  const baseline: BaselineEntry[] = opts.baseline ? await loadBaseline(opts.baseline) : [];
  const { documents } = opts.policies.length
    ? await readPolicies(opts.policies, opts.schema ? { schema: opts.schema } : {})
    : { documents: [] };

  using store = ResultStore.open(outDir, { resume: opts.resume });
  for (const notice of store.notices) process.stderr.write(`${notice}\n`);
  const bus = new EventBus().on(store.listener);
  const progressDone = attachProgress(bus);
  const results = await runMatrix({
    cells, suites, documents, outDir, store, bus,
    ...(opts.jobs ? { jobs: opts.jobs } : {}),
    ...(opts.timeoutSec ? { timeoutMs: opts.timeoutSec * 1000 } : {}),
    ...(opts.lock ? { lockFile: opts.lock } : {}),
  });
  await progressDone;
  const gate = evaluateGate(results, baseline);
  await writeReports(outDir, results, cells, { gate });
  printGate(gate, results, out, outDir);
  return gateExitCode(gate, results);
}
