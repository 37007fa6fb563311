/**
 * `bpfgate run`: plan the matrix, read the policies, run the suites, write the
 * output directory (run.json first, results.jsonl as checks finish, the reports at
 * the end), and turn the results into the gate's exit code:
 * 0 all expected; 1 a check failed that the baseline does not expect;
 * 2 bad input; 3 infrastructure error (and nothing worse); 130/143 interrupted.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import { BpfgateError, EXIT, InputError } from '../../core/errors.js';
import { EventBus } from '../../core/events.js';
import { evaluateGate, loadBaseline, type BaselineEntry, type GateResult } from '../../core/baseline.js';
import { ResultStore } from '../../core/results-store.js';
import { inputsHash, readRunManifest, writeRunManifest, RUN_FILE, type RunInputs, type InputFile, type ShardRecord } from '../../core/run-manifest.js';
import { BPFGATE_VERSION } from '../../core/version.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadMatrix } from '../../matrix/load.js';
import { selectCells } from '../../matrix/select.js';
import { formatShard, shardCells, type Shard } from '../../matrix/shard.js';
import type { Cell } from '../../matrix/cell.js';
import { readPolicies, type PolicyDocument } from '../../policy/index.js';
import { readPreviousRun, writeReports } from '../../reports/index.js';
import { runMatrix, type RunOutcome } from '../../runners/orchestrator.js';
import { readLockFile } from '../../runners/qemu/lockfile.js';
import { CROSS_CHECKS, resolveSuites, type SuiteOptions } from '../../suites/registry.js';
import { interruptOnSignals } from '../interrupt.js';
import { plainProgress, terminalProgress } from '../progress.js';
import type { PlatformSettings } from '../../core/platform.js';
import { nodeCells } from '../../runners/kubeconfig/platform.js';

export interface RunCommandOptions extends SuiteOptions {
  matrix?: string;
  policies: string[];
  /** Default: static, probe, policies with policies (probe alone without) on QEMU cells; static, cluster on a cluster's. */
  suites?: string[];
  /** An existing cluster: its nodes are the cells. */
  kubeconfig?: string;
  platformSettings?: PlatformSettings;
  cells?: string;
  jobs?: number;
  out: string;
  baseline?: string;
  resume: boolean;
  schema?: string;
  lock?: string;
  timeoutSec?: number;
  /** Run only this shard of the cells (`--shard I/N`); `bpfgate merge` joins the shards. */
  shard?: Shard;
  /** A previous output directory: the reports open with what changed against it. */
  compare?: string;
  out_stream?: NodeJS.WritableStream;
}

export async function planCells(matrix: string | undefined, cells: string | undefined, kubeconfig?: string): Promise<Cell[]> {
  if (kubeconfig && matrix) throw new BpfgateError('usage', '--kubeconfig and --matrix exclude each other: the cells are either the cluster\'s nodes or the matrix\'s');
  // An existing cluster's cells are its nodes: found, not planned.
  const all = kubeconfig ? await nodeCells(kubeconfig) : (matrix ? await loadMatrix(matrix) : await loadDefaultMatrix()).cells;
  const selected = cells ? selectCells(all, cells) : all;
  if (selected.length === 0) {
    throw new BpfgateError('usage', `--cells ${cells} matches none of ${all.map((c) => c.id).join(', ')}`);
  }
  return selected;
}

/** The suites a run asks when none are named: what the cells' platform answers. */
function defaultSuites(cells: readonly Cell[], policies: readonly string[]): string[] {
  if (cells.every((c) => c.platform !== 'qemu')) return policies.length ? ['static', 'cluster'] : ['cluster'];
  return policies.length ? ['static', 'probe', 'policies'] : ['probe'];
}

/** Exit code from the gate: an unexpected fail beats an unexpected infra error. */
export function gateExitCode(gate: GateResult, results: CheckResult[]): number {
  if (results.length === 0) return EXIT.infrastructure; // a run that checked nothing proves nothing
  if (gate.unexpected.some((r) => r.status === 'fail')) return EXIT.unexpectedFailure;
  if (gate.unexpected.some((r) => r.status === 'error')) return EXIT.infrastructure;
  return EXIT.ok;
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
  out.write(`\nResults: ${outDir}/results.jsonl, run.json, junit.xml, table.md, table.html, table.json, attack-layer.json\n`);
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

/** A file that decides verdicts, named as the user gave it (relative to the working directory). */
export async function fileInput(path: string, shownAs = relative(process.cwd(), resolve(path))): Promise<InputFile> {
  return { path: shownAs, sha256: createHash('sha256').update(await readFile(path)).digest('hex') };
}

/** The policy files of a run, each named relative to the --policies root it was found under. */
async function policyInputs(roots: readonly string[], documents: readonly PolicyDocument[]): Promise<RunInputs['policies']> {
  const files = new Map<string, string>();
  for (const d of documents) files.set(d.relPath, d.file);
  const named = await Promise.all([...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([rel, file]) => fileInput(file, rel)));
  return { roots: roots.map((r) => relative(process.cwd(), resolve(r)) || '.'), files: named };
}

/** The `onFacts` of a run: run.json, written once every cell's facts are known. */
export function runManifestWriter(outDir: string, inputs: RunInputs, shard?: ShardRecord): NonNullable<Parameters<typeof runMatrix>[0]['onFacts']> {
  const startedAt = new Date().toISOString();
  return (facts, tools) =>
    writeRunManifest(outDir, {
      schemaVersion: 1, bpfgate: BPFGATE_VERSION, startedAt, inputs, inputsSha256: inputsHash(inputs),
      tools: { node: process.version, ...tools }, cells: [...facts], ...(shard ? { shard } : {}),
    });
}

/** A shard's run ended: say so in its run.json, so that merge takes it as complete. */
async function markShardFinished(outDir: string): Promise<void> {
  const manifest = await readRunManifest(outDir);
  if (!manifest?.shard) return;
  await writeRunManifest(outDir, { ...manifest, shard: { ...manifest.shard, finishedAt: new Date().toISOString() } });
}

export async function runCommand(opts: RunCommandOptions): Promise<number> {
  const out = opts.out_stream ?? process.stdout;
  const outDir = resolve(opts.out);
  const runCells = await planCells(opts.matrix, opts.cells, opts.kubeconfig);
  // A shard runs its part of the cells; everything else (suites, inputs, their hash) is the whole run's.
  const cells = opts.shard ? shardCells(runCells, opts.shard) : runCells;
  const shard: ShardRecord | undefined = opts.shard && { ...opts.shard, runCells: runCells.map((c) => c.id), cells: cells.map((c) => c.id) };
  const resolved = await resolveSuites(opts.suites ?? defaultSuites(runCells, opts.policies), opts);
  // A lock file that cannot be read or is malformed is bad input (exit 2), said before anything boots.
  if (opts.lock) await readLockFile(opts.lock);
  const baseline: BaselineEntry[] = opts.baseline ? await loadBaseline(opts.baseline) : [];
  // Read before anything runs: bad input fails at once, and --compare may name --out itself.
  const earlier = opts.compare ? await readPreviousRun(opts.compare) : undefined;
  const { documents } = opts.policies.length
    ? await readPolicies(opts.policies, opts.schema ? { schema: opts.schema } : {})
    : { documents: [] };
  const inputs: RunInputs = {
    matrix: opts.matrix ? await fileInput(opts.matrix) : null,
    cells: opts.cells ?? null,
    suites: resolved.suites.map((s) => s.name),
    policies: await policyInputs(opts.policies, documents),
    schema: opts.schema ?? null,
    lock: opts.lock ? await fileInput(opts.lock) : null,
    ...resolved.inputs,
  };
  const fingerprint = inputsHash(inputs);
  if (opts.resume) {
    const previous = await readRunManifest(outDir);
    if (previous && previous.inputsSha256 !== fingerprint) {
      throw new InputError('resume-mismatch', `${outDir}/${RUN_FILE}`, {}, 'expected the inputs of the run being resumed (matrix, cells, suites, policies, lock, triggers, agent): they differ; resume with the same options, or use another --out');
    }
    const was = previous?.shard ? formatShard(previous.shard) : undefined;
    const now = opts.shard ? formatShard(opts.shard) : undefined;
    if (previous && was !== now) {
      throw new InputError('resume-mismatch', `${outDir}/${RUN_FILE}`, { field: 'shard' }, `expected the shard of the run being resumed (${was ?? 'no --shard'}); got ${now ?? 'no --shard'}`);
    }
  }

  using store = ResultStore.open(outDir, { resume: opts.resume });
  for (const notice of store.notices) process.stderr.write(`${notice}\n`);
  const bus = new EventBus().on(store.listener);
  const progressDone = attachProgress(bus);
  using interrupt = interruptOnSignals((signal) => bus.emit({ type: 'log', level: 'warn', message: `${signal}: stopping the guests; finished checks stay in ${outDir}` }));
  const outcome: RunOutcome = await runMatrix({
    cells, suites: resolved.suites, crossChecks: CROSS_CHECKS, documents, outDir, store, bus,
    signal: interrupt.signal,
    onFacts: runManifestWriter(outDir, inputs, shard),
    ...(opts.platformSettings ? { platformSettings: opts.platformSettings } : {}),
    ...(opts.jobs ? { jobs: opts.jobs } : {}),
    ...(opts.timeoutSec ? { timeoutMs: opts.timeoutSec * 1000 } : {}),
    ...(opts.lock ? { lockFile: opts.lock } : {}),
  });
  await progressDone;
  if (outcome.interrupted) {
    process.stderr.write(`bpfgate: interrupted by ${interrupt.received}: ${store.size} checks on disk in ${store.file}; run the same command with --resume to finish\n`);
    return interrupt.exitCode;
  }
  const { results } = outcome;
  const gate = evaluateGate(results, baseline);
  await writeReports(outDir, results, outcome.facts, { gate, ...(earlier ? { compare: earlier } : {}) });
  if (opts.shard) await markShardFinished(outDir);
  if (opts.shard && cells.length === 0) {
    // More shards than work units: an empty shard is complete, and the gate is the merge's.
    out.write(`\nshard ${formatShard(opts.shard)} has no cells: the run's ${runCells.length} cells fill fewer shards. Results: ${outDir}/run.json\n`);
    return EXIT.ok;
  }
  printGate(gate, results, out, outDir);
  return gateExitCode(gate, results);
}
