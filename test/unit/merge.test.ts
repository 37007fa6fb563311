/**
 * Merging shards, on the shards a real run would have written: the run.json and the
 * results of a real default-matrix run (test/fixtures/results), split by the same
 * splitter `run --shard I/N` uses.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { CheckResult } from '../../core/check.js';
import { BpfgateError, exitCodeOf } from '../../core/errors.js';
import { copyShardFiles, inputDifferences, mergeShards, readShard, resultsText } from '../../core/merge.js';
import { readResultsDir, serializeResult } from '../../core/results-store.js';
import { readRunManifest, type RunManifest } from '../../core/run-manifest.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { shardCells } from '../../matrix/shard.js';
import { baselineFrom } from '../../cli/commands/baseline.js';
import { mergeCommand } from '../../cli/commands/merge.js';
import { PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'results');
const RUN = JSON.parse(readFileSync(join(FIXTURES, 'default-matrix.run.json'), 'utf8')) as RunManifest;
const RESULTS_FILE = join(FIXTURES, 'probe-default-matrix.jsonl');

const root = mkdtempSync(join(tmpdir(), 'bpfgate-merge-'));
let made = 0;

/** The three shard directories of the real run, as `run --shard I/3` writes them; `edit` changes a shard's run.json. */
async function shards(count = 3, edit: (m: RunManifest, index: number) => RunManifest = (m) => m): Promise<string[]> {
  const { cells } = await loadDefaultMatrix();
  const results = await readResultsDir(RESULTS_FILE);
  const base = join(root, `run${made++}`);
  return Array.from({ length: count }, (_, i) => {
    const shard = { index: i + 1, count };
    const mine = shardCells(cells, shard).map((c) => c.id);
    const dir = join(base, `shard${i + 1}`);
    mkdirSync(dir, { recursive: true });
    const manifest: RunManifest = {
      ...RUN, cells: RUN.cells.filter((c) => mine.includes(c.cell)),
      shard: { ...shard, runCells: cells.map((c) => c.id), cells: mine, finishedAt: '2026-11-29T20:00:00.000Z' },
    };
    writeFileSync(join(dir, 'run.json'), JSON.stringify(edit(manifest, i + 1), null, 2));
    writeFileSync(join(dir, 'results.jsonl'), resultsText(results.filter((r) => mine.includes(r.cell))));
    writeFileSync(join(dir, 'table.md'), `shard ${i + 1}'s own table, replaced by the merge\n`);
    for (const cell of mine) {
      mkdirSync(join(dir, 'cells', cell), { recursive: true });
      writeFileSync(join(dir, 'cells', cell, 'serial.log'), `console of ${cell}\n`);
    }
    return dir;
  });
}

async function mergeError(dirs: string[]): Promise<BpfgateError> {
  const err = await (async () => mergeShards(await Promise.all(dirs.map(readShard))))().then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BpfgateError);
  expect(exitCodeOf(err)).toBe(2);
  return err as BpfgateError;
}

const verdicts = (results: readonly CheckResult[]) => results.map((r) => [r.cell, r.subject, r.check, r.status, r.reason].join(' ')).sort();

describe('merging the shards of a run', () => {
  it('gives back every check of the run once, in the run\'s cell order, and one run.json listing the shards', async () => {
    const dirs = await shards();
    const { manifest, results } = mergeShards(await Promise.all(dirs.map(readShard)));
    const all = await readResultsDir(RESULTS_FILE);
    expect(results).toHaveLength(all.length);
    expect(results.map(serializeResult).sort()).toEqual(all.map(serializeResult).sort());
    expect(verdicts(results)).toEqual(verdicts(all));
    const cellOrder = RUN.cells.map((c) => c.cell);
    const seen = [...new Set(results.map((r) => r.cell))];
    expect(seen).toEqual(cellOrder.filter((c) => seen.includes(c)));
    expect(manifest.cells).toEqual(RUN.cells);
    expect(manifest.inputsSha256).toBe(RUN.inputsSha256);
    expect(manifest.shard).toBeUndefined();
    expect(manifest.shards?.map((s) => s.shard)).toEqual(['1/3', '2/3', '3/3']);
    expect(manifest.shards?.flatMap((s) => s.cells).sort()).toEqual([...cellOrder].sort());
  });

  it('takes the shards in any order', async () => {
    const dirs = await shards();
    const a = mergeShards(await Promise.all(dirs.map(readShard)));
    const b = mergeShards(await Promise.all([dirs[2]!, dirs[0]!, dirs[1]!].map(readShard)));
    expect(b.results.map(serializeResult)).toEqual(a.results.map(serializeResult));
    expect(b.manifest).toEqual(a.manifest);
  });

  it('writes one output as a run does: results, a run.json that reads back, every cell\'s files, the reports, and the gate\'s exit code', async () => {
    const dirs = await shards();
    const out = join(root, `merged${made++}`);
    const sink = { text: '', write(s: string) { this.text += s; return true; } };
    const code = await mergeCommand({ dirs, out, out_stream: sink as unknown as NodeJS.WritableStream });
    // The real run has features the kernels lack (ringbuf-pagesize on 16K pages, ...): without a baseline the gate fails.
    expect(code).toBe(1);
    expect(sink.text).toMatch(/FAIL arm64-16k-6\.12 probe\/ringbuf-4096 feature: ringbuf-pagesize/);
    expect(verdicts(await readResultsDir(out))).toEqual(verdicts(await readResultsDir(RESULTS_FILE)));
    const manifest = await readRunManifest(out);
    expect(manifest?.shards).toHaveLength(3);
    for (const cell of RUN.cells) expect(readFileSync(join(out, 'cells', cell.cell, 'serial.log'), 'utf8')).toBe(`console of ${cell.cell}\n`);
    for (const report of ['junit.xml', 'table.md', 'table.html', 'table.json']) expect(existsSync(join(out, report)), report).toBe(true);
    expect(readFileSync(join(out, 'table.md'), 'utf8')).not.toMatch(/own table/);

    // With a baseline of the run's failures the same merge passes: run's gate, run's codes.
    const baseline = join(root, `baseline${made++}.yaml`);
    writeFileSync(baseline, stringify(baselineFrom(await readResultsDir(RESULTS_FILE))));
    expect(await mergeCommand({ dirs, out, baseline, out_stream: sink as unknown as NodeJS.WritableStream })).toBe(0);
  });

  it('refuses shards of different inputs, naming both directories and what differs', async () => {
    const dirs = await shards(3, (m, i) => (i === 2 ? { ...m, inputsSha256: 'f'.repeat(64), inputs: { ...m.inputs, policies: { ...m.inputs.policies, files: m.inputs.policies.files.map((f, n) => (n === 0 ? { ...f, sha256: '0'.repeat(64) } : f)) } } } : m));
    const err = await mergeError(dirs);
    expect(err.code).toBe('merge-inputs-differ');
    expect(err.message).toContain(dirs[0]!);
    expect(err.message).toContain(dirs[1]!);
    expect(err.message).toContain(`policy files: 1 differ (${RUN.inputs.policies.files[0]!.path} changed)`);
  });

  it('refuses shards of another bpfgate version, and of another matrix or lock', async () => {
    const version = await mergeError(await shards(3, (m, i) => (i === 3 ? { ...m, bpfgate: '9.9.9' } : m)));
    expect(version.code).toBe('merge-inputs-differ');
    expect(version.message).toMatch(/bpfgate version: 0\.1\.0 vs 9\.9\.9/);
    const lock = { path: 'bpfgate.lock.json', sha256: 'a'.repeat(64) };
    const other = { ...RUN, inputs: { ...RUN.inputs, matrix: { path: 'm.yaml', sha256: 'b'.repeat(64) }, lock } };
    expect(inputDifferences(RUN, other)).toEqual([
      `matrix: the built-in default vs m.yaml (sha256 ${'b'.repeat(12)})`,
      `lock: none vs bpfgate.lock.json (sha256 ${'a'.repeat(12)})`,
    ]);
    expect(inputDifferences(RUN, RUN)).toEqual([]);
  });

  it('says which shard is missing, and which cells no shard ran', async () => {
    const dirs = await shards();
    const err = await mergeError([dirs[0]!, dirs[2]!]);
    expect(err.code).toBe('merge-shards-missing');
    expect(err.message).toMatch(/^shard 2\/3 missing: given 1\/3 \(.*\), 3\/3 \(.*\); no shard ran /);
    const { cells } = await loadDefaultMatrix();
    for (const cell of shardCells(cells, { index: 2, count: 3 })) expect(err.message).toContain(cell.id);
  });

  it('refuses a shard given twice', async () => {
    const dirs = await shards();
    const copy = `${dirs[1]!}-copy`;
    cpSync(dirs[1]!, copy, { recursive: true });
    const err = await mergeError([...dirs, copy]);
    expect(err.code).toBe('merge-shard-duplicate');
    expect(err.message).toBe(`${dirs[1]} and ${copy} are both shard 2/3: expected each shard once`);
  });

  it('refuses shards of two different splits', async () => {
    const three = await shards(3);
    const two = await shards(2);
    const err = await mergeError([three[0]!, two[1]!]);
    expect(err.code).toBe('merge-shard-count');
  });

  it('refuses a shard that did not finish, and a directory that is no shard', async () => {
    const unfinished = await mergeError(await shards(3, (m, i) => (i === 3 ? { ...m, shard: { ...m.shard!, finishedAt: undefined } } as RunManifest : m)));
    expect(unfinished.code).toBe('merge-shard-unfinished');
    expect(unfinished.message).toMatch(/shard 3\/3 did not finish .*--resume/);
    const plain = join(root, `plain${made++}`);
    mkdirSync(plain);
    writeFileSync(join(plain, 'run.json'), JSON.stringify(RUN));
    const notShard = await mergeError([plain]);
    expect(notShard.code).toBe('merge-not-a-shard');
    expect(notShard.message).toContain(join(plain, 'run.json'));
  });

  it('refuses a shard holding checks of a cell it did not run', async () => {
    const dirs = await shards();
    const other = readFileSync(join(dirs[1]!, 'results.jsonl'), 'utf8').split('\n')[0]!;
    writeFileSync(join(dirs[0]!, 'results.jsonl'), `${readFileSync(join(dirs[0]!, 'results.jsonl'), 'utf8')}${other}\n`);
    const err = await mergeError(dirs);
    expect(err.code).toBe('merge-foreign-result');
    expect(err.message).toContain(`holds checks of cell ${(JSON.parse(other) as CheckResult).cell}, which shard 1/3 did not run`);
  });

  it('refuses two shards holding the same cell directory, before copying anything', async () => {
    const dirs = await shards();
    const stray = join(dirs[1]!, 'cells', RUN.cells.find((c) => readShardCells(dirs[0]!).includes(c.cell))!.cell);
    mkdirSync(stray, { recursive: true });
    const out = join(root, `out${made++}`);
    const err = await copyShardFiles(await Promise.all(dirs.map(readShard)), out).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BpfgateError);
    expect((err as BpfgateError).code).toBe('merge-shard-overlap');
    expect(existsSync(out)).toBe(false);
  });
});

function readShardCells(dir: string): string[] {
  return (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunManifest).shard!.cells;
}
