/**
 * Joining the shards of a run (`bpfgate run --shard I/N` on N machines) into one
 * output: one results list, one run.json listing the shards, every cell's files.
 *
 * Invariants: only shards of one run are joined (the same inputs hash and bpfgate
 * version, the same split), each finished, each index once, all N present, each cell
 * in exactly one shard and each check with it; otherwise nothing is written and the
 * error (exit 2) names the directories and what differs or is missing. The merged
 * results are the shards' results, in the run's cell order; nothing is re-judged.
 */
import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import type { CheckResult } from './check.js';
import { BpfgateError, InputError } from './errors.js';
import { formatShard } from '../matrix/shard.js';
import { readResultsDir, serializeResult } from './results-store.js';
import { readRunManifest, RUN_FILE, type InputFile, type MergedShard, type RunManifest, type ShardRecord } from './run-manifest.js';

/** A shard's output directory, read. */
export interface ShardOutput {
  /** As given on the command line. */
  dir: string;
  manifest: RunManifest & { shard: ShardRecord };
  results: CheckResult[];
}

export interface MergedRun {
  manifest: RunManifest;
  results: CheckResult[];
}

/** Read one shard's run.json and results; a directory that is not a finished shard is refused. */
export async function readShard(dir: string): Promise<ShardOutput> {
  const file = join(dir, RUN_FILE);
  const manifest = await readRunManifest(dir);
  if (!manifest) throw new InputError('merge-not-a-shard', file, {}, 'no run.json here: expected the output directory of `bpfgate run --shard I/N`');
  const { shard } = manifest;
  if (!shard) throw new InputError('merge-not-a-shard', file, { field: 'shard' }, 'expected the run.json of a shard (`bpfgate run --shard I/N`); this run was not sharded');
  if (!shard.finishedAt) {
    throw new InputError('merge-shard-unfinished', file, { field: 'shard.finishedAt' }, `shard ${formatShard(shard)} did not finish (interrupted, or still running): finish it with the same command and --resume, then merge`);
  }
  return { dir, manifest: { ...manifest, shard }, results: await readResultsDir(dir) };
}

function fileText(f: InputFile | null, none: string): string {
  return f ? `${f.path} (sha256 ${f.sha256.slice(0, 12)})` : none;
}

function listDiff(what: string, a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): string | undefined {
  const changed = [...a.keys()].filter((k) => b.has(k) && b.get(k) !== a.get(k)).map((k) => `${k} changed`);
  const onlyA = [...a.keys()].filter((k) => !b.has(k)).map((k) => `${k} only in the first`);
  const onlyB = [...b.keys()].filter((k) => !a.has(k)).map((k) => `${k} only in the second`);
  const all = [...changed, ...onlyA, ...onlyB];
  if (all.length === 0) return undefined;
  const shown = all.slice(0, 5).join(', ');
  return `${what}: ${all.length} differ (${shown}${all.length > 5 ? `, … ${all.length - 5} more` : ''})`;
}

/** What makes two runs' inputs differ, in words; empty when they were asked the same. */
export function inputDifferences(a: RunManifest, b: RunManifest): string[] {
  const out: string[] = [];
  const x = a.inputs;
  const y = b.inputs;
  if (a.bpfgate !== b.bpfgate) out.push(`bpfgate version: ${a.bpfgate} vs ${b.bpfgate}`);
  if ((x.matrix?.sha256 ?? null) !== (y.matrix?.sha256 ?? null)) out.push(`matrix: ${fileText(x.matrix, 'the built-in default')} vs ${fileText(y.matrix, 'the built-in default')}`);
  if (x.cells !== y.cells) out.push(`--cells: ${JSON.stringify(x.cells ?? 'all')} vs ${JSON.stringify(y.cells ?? 'all')}`);
  if (x.suites.join(',') !== y.suites.join(',')) out.push(`suites: ${x.suites.join(',')} vs ${y.suites.join(',')}`);
  const policies = listDiff('policy files', new Map(x.policies.files.map((f) => [f.path, f.sha256])), new Map(y.policies.files.map((f) => [f.path, f.sha256])));
  if (policies) out.push(policies);
  if ((x.lock?.sha256 ?? null) !== (y.lock?.sha256 ?? null)) out.push(`lock: ${fileText(x.lock, 'none')} vs ${fileText(y.lock, 'none')}`);
  if (JSON.stringify(x.triggers) !== JSON.stringify(y.triggers)) out.push(`triggers: ${JSON.stringify(x.triggers)} vs ${JSON.stringify(y.triggers)}`);
  if (JSON.stringify(x.agent) !== JSON.stringify(y.agent)) out.push(`agent: ${JSON.stringify(x.agent)} vs ${JSON.stringify(y.agent)}`);
  if (out.length === 0 && a.inputsSha256 !== b.inputsSha256) out.push(`inputs hash: ${a.inputsSha256.slice(0, 12)} vs ${b.inputsSha256.slice(0, 12)}`);
  return out;
}

/** Check that the shards are the whole of one run, and join them (nothing is written). */
export function mergeShards(given: readonly ShardOutput[]): MergedRun {
  if (given.length === 0) throw new BpfgateError('usage', 'merge: expected the output directories of the shards');
  const shards = [...given].sort((p, q) => p.manifest.shard.index - q.manifest.shard.index);
  const first = shards[0]!;
  const runCells = first.manifest.shard.runCells;
  const byIndex = new Map<number, ShardOutput>();
  for (const s of shards) {
    const differs = inputDifferences(first.manifest, s.manifest);
    if (differs.length) {
      throw new BpfgateError('merge-inputs-differ', `${first.dir} and ${s.dir} are shards of different runs: ${differs.join('; ')}; expected shards run with the same inputs and bpfgate`);
    }
    const { shard } = s.manifest;
    if (shard.count !== first.manifest.shard.count) {
      throw new BpfgateError('merge-shard-count', `${first.dir} is shard ${formatShard(first.manifest.shard)} and ${s.dir} is shard ${formatShard(shard)}: expected shards of one split into ${first.manifest.shard.count}`);
    }
    if (shard.runCells.join(',') !== runCells.join(',')) {
      throw new BpfgateError('merge-inputs-differ', `${first.dir} and ${s.dir} planned different cells: ${runCells.join(', ')} vs ${shard.runCells.join(', ')}`);
    }
    const twin = byIndex.get(shard.index);
    if (twin) throw new BpfgateError('merge-shard-duplicate', `${twin.dir} and ${s.dir} are both shard ${formatShard(shard)}: expected each shard once`);
    byIndex.set(shard.index, s);
  }

  const count = first.manifest.shard.count;
  const owner = new Map<string, ShardOutput>();
  for (const s of shards) {
    for (const cell of s.manifest.shard.cells) {
      const other = owner.get(cell);
      if (other) throw new BpfgateError('merge-shard-overlap', `cell ${cell} is in ${other.dir} (shard ${formatShard(other.manifest.shard)}) and in ${s.dir} (shard ${formatShard(s.manifest.shard)}): expected each cell in one shard`);
      owner.set(cell, s);
    }
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  const uncovered = runCells.filter((c) => !owner.has(c));
  if (missing.length || uncovered.length) {
    const which = missing.map((i) => `shard ${i}/${count}`).join(', ');
    const have = shards.map((s) => `${formatShard(s.manifest.shard)} (${s.dir})`).join(', ');
    throw new BpfgateError('merge-shards-missing', `${which || 'a shard'} missing: given ${have}; no shard ran ${uncovered.join(', ') || 'nothing (an empty shard)'}; expected all ${count} shards of the run`);
  }

  const results: CheckResult[] = [];
  const order = new Map(runCells.map((c, i) => [c, i]));
  for (const s of shards) {
    const own = new Set(s.manifest.shard.cells);
    const foreign = s.results.find((r) => !own.has(r.cell));
    if (foreign) {
      throw new BpfgateError('merge-foreign-result', `${join(s.dir, 'results.jsonl')} holds checks of cell ${foreign.cell}, which shard ${formatShard(s.manifest.shard)} did not run (its cells: ${[...own].join(', ') || 'none'})`);
    }
    results.push(...s.results);
  }
  // The run's cell order; a cell's checks keep the order they finished in (sort is stable).
  results.sort((p, q) => order.get(p.cell)! - order.get(q.cell)!);

  const facts = shards.flatMap((s) => s.manifest.cells).sort((p, q) => (order.get(p.cell) ?? Infinity) - (order.get(q.cell) ?? Infinity));
  const merged: MergedShard[] = shards.map((s) => ({
    shard: formatShard(s.manifest.shard), dir: s.dir, startedAt: s.manifest.startedAt, finishedAt: s.manifest.shard.finishedAt!,
    cells: [...s.manifest.shard.cells], tools: s.manifest.tools,
  }));
  const { shard: _shard, ...base } = first.manifest;
  const startedAt = shards.map((s) => s.manifest.startedAt).sort()[0]!;
  return { manifest: { ...base, startedAt, cells: facts, shards: merged }, results };
}

/** The results as results.jsonl holds them. */
export function resultsText(results: readonly CheckResult[]): string {
  return results.map((r) => `${serializeResult(r)}\n`).join('');
}

const inside = (dir: string, parent: string) => {
  const rel = relative(resolve(parent), resolve(dir));
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
};

/**
 * Copy each shard's directories into `outDir`: `cells/<cell>/` per cell (serial logs,
 * evidence files), and any other directory a shard wrote (an assembled cluster's
 * logs) whole. Top-level files are the run's own (run.json, results, reports) and are
 * written anew by the merge. Two shards with the same directory are refused before
 * anything is copied.
 */
export async function copyShardFiles(shards: readonly ShardOutput[], outDir: string): Promise<void> {
  for (const s of shards) {
    if (inside(outDir, s.dir)) throw new BpfgateError('usage', `--out ${outDir} is inside the shard ${s.dir}: expected a directory of its own for the merged run`);
  }
  const copies = new Map<string, ShardOutput>();
  const plan = (to: string, s: ShardOutput) => {
    const other = copies.get(to);
    if (other) throw new BpfgateError('merge-shard-overlap', `${other.dir} and ${s.dir} both hold ${to}: expected each cell's files in one shard`);
    copies.set(to, s);
  };
  for (const s of shards) {
    for (const entry of await readdir(s.dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      if (entry.name !== 'cells') {
        plan(entry.name, s);
        continue;
      }
      for (const cell of await readdir(join(s.dir, 'cells'), { withFileTypes: true })) if (cell.isDirectory()) plan(join('cells', cell.name), s);
    }
  }
  await mkdir(outDir, { recursive: true });
  for (const [to, s] of copies) {
    const target = join(outDir, to);
    await rm(target, { recursive: true, force: true });
    await cp(join(s.dir, to), target, { recursive: true });
  }
}
