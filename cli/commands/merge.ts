/**
 * `bpfgate merge DIR... --out DIR [--baseline F]`: the shards of one run (each
 * `bpfgate run --shard I/N --out DIR`) joined into one output directory, as the
 * unsharded run writes it: results.jsonl, run.json (listing the shards), cells/*,
 * and every report by the run's own report writer (and the job summary in GitHub
 * Actions); then the gate, with run's exit codes: 0 all expected, 1 a check failed
 * that the baseline does not expect, 3 infrastructure errors. Shards of different
 * inputs, missing, duplicate or unfinished shards are bad input (exit 2): nothing is written.
 */
import { join, resolve } from 'node:path';
import { writeAtomically } from '../../core/atomic-write.js';
import { evaluateGate, loadBaseline, type BaselineEntry } from '../../core/baseline.js';
import { copyShardFiles, mergeShards, readShard, resultsText, type ShardOutput } from '../../core/merge.js';
import { RESULTS_FILE } from '../../core/results-store.js';
import { writeRunManifest } from '../../core/run-manifest.js';
import { writeReports } from '../../reports/index.js';
import { gateExitCode, printGate } from './run.js';

export interface MergeCommandOptions {
  dirs: string[];
  out: string;
  baseline?: string;
  out_stream?: NodeJS.WritableStream;
}

export async function mergeCommand(opts: MergeCommandOptions): Promise<number> {
  const out = opts.out_stream ?? process.stdout;
  const outDir = resolve(opts.out);
  const baseline: BaselineEntry[] = opts.baseline ? await loadBaseline(opts.baseline) : [];
  const shards: ShardOutput[] = [];
  for (const dir of opts.dirs) shards.push(await readShard(dir));
  const { manifest, results } = mergeShards(shards);

  await copyShardFiles(shards, outDir);
  await writeRunManifest(outDir, manifest);
  await writeAtomically(join(outDir, RESULTS_FILE), resultsText(results));
  const gate = evaluateGate(results, baseline);
  await writeReports(outDir, results, manifest.cells, { gate });

  out.write(`merged ${manifest.shards!.map((s) => `${s.shard} (${s.cells.length} cells)`).join(', ')} into ${outDir}\n`);
  printGate(gate, results, out, outDir);
  return gateExitCode(gate, results);
}
