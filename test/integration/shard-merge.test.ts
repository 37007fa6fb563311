/**
 * Sharding for real: the x86_64 cells of the default matrix, booted under QEMU with the
 * static and probe suites, run whole and as three shards one after the other; the
 * shards merged give the verdicts of the whole run. Merging shards of different inputs,
 * or an incomplete set, is refused with exit 2.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import type { RunManifest } from '../../core/run-manifest.js';
import { bpfgate, readResults, tempOut, type CliRun } from '../support/cli.js';
import { CRD_DIR, EXAMPLES } from '../support/shared.js';

const CELLS = 'x86_64-*';
const X86_CELLS = ['x86_64-6.1', 'x86_64-6.12', 'x86_64-6.1+nobpflsm', 'x86_64-6.12+nobpflsm'];
const POLICIES = ['lsm_file_open.yaml', 'kprobe_commit_creds.yaml', 'datagram.yaml'].map((f) => join(EXAMPLES, f)).join(',');
const args = (out: string, ...more: string[]) => ['run', '--suite', 'static,probe', '--cells', CELLS, '--policies', POLICIES, '--schema', CRD_DIR, '--out', out, ...more];

const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunManifest;
const verdicts = (results: readonly CheckResult[]) => results.map((r) => JSON.stringify([r.cell, r.suite, r.subject, r.check, r.status, r.reason])).sort();

describe('run --shard I/3 one after the other, then merge, against the unsharded run', () => {
  const root = tempOut('shard-merge');
  const whole = join(root, 'whole');
  const shards = [1, 2, 3].map((i) => join(root, `shard${i}`));
  const merged = join(root, 'merged');
  let wholeRun: CliRun;
  let shardRuns: CliRun[];
  let mergeRun: CliRun;

  beforeAll(async () => {
    wholeRun = await bpfgate(args(whole));
    shardRuns = [];
    for (const [i, out] of shards.entries()) shardRuns.push(await bpfgate(args(out, '--shard', `${i + 1}/3`)));
    mergeRun = await bpfgate(['merge', ...shards, '--out', merged]);
    // Eight cell boots under TCG, one run after the other: 7 min on a loaded 2-core machine.
  }, 900_000);

  it('runs each shard as a complete output directory of its own part of the cells', () => {
    for (const r of shardRuns) expect([0, 1], r.stderr).toContain(r.exitCode);
    const whole_ = manifest(whole);
    const parts = shards.map(manifest);
    for (const [i, m] of parts.entries()) {
      expect(m.shard).toMatchObject({ index: i + 1, count: 3, runCells: whole_.cells.map((c) => c.cell) });
      expect(m.shard?.finishedAt).toBeTypeOf('string');
      expect(m.inputsSha256).toBe(whole_.inputsSha256);
      expect(m.cells.map((c) => c.cell)).toEqual(m.shard!.cells);
      expect(new Set(readResults(shards[i]!).map((r) => r.cell))).toEqual(new Set(m.shard!.cells));
      for (const report of ['junit.xml', 'table.md', 'table.html', 'table.json']) expect(existsSync(join(shards[i]!, report)), report).toBe(true);
    }
    const cells = parts.flatMap((m) => m.shard!.cells);
    expect([...cells].sort()).toEqual([...X86_CELLS].sort());
    expect(new Set(cells).size).toBe(X86_CELLS.length);
    expect(parts.map((m) => m.shard!.cells.length)).toEqual([2, 1, 1]);
  });

  it('merges into the verdicts of the unsharded run, with its exit code', () => {
    expect(mergeRun.stderr).toBe('');
    expect(mergeRun.exitCode).toBe(wholeRun.exitCode);
    expect([0, 1]).toContain(wholeRun.exitCode);
    const want = readResults(whole);
    const got = readResults(merged);
    // Real kernels answered: the probe suite's features and the static suite's policies, on every cell.
    expect([...new Set(want.map((r) => r.suite))]).toEqual(expect.arrayContaining(['static', 'probe', 'boot']));
    expect(new Set(want.map((r) => r.cell))).toEqual(new Set(X86_CELLS));
    expect(want.some((r) => r.suite === 'probe' && r.status === 'pass')).toBe(true);
    expect(want.some((r) => r.status === 'fail')).toBe(true);
    // Verdicts first: a difference is shown as the rows that differ, not as a count.
    expect(verdicts(got)).toEqual(verdicts(want));
    expect(got).toHaveLength(want.length);
    expect(readFileSync(join(merged, 'table.md'), 'utf8')).toBe(readFileSync(join(whole, 'table.md'), 'utf8'));
  });

  it('writes one run.json listing the shards, every cell\'s console log and the reports', () => {
    const m = manifest(merged);
    const w = manifest(whole);
    expect(m.shard).toBeUndefined();
    expect(m.shards?.map((s) => s.shard)).toEqual(['1/3', '2/3', '3/3']);
    expect(m.shards?.map((s) => s.dir)).toEqual(shards);
    expect(m.inputsSha256).toBe(w.inputsSha256);
    expect(m.inputs).toEqual(w.inputs);
    expect(m.cells.map((c) => c.cell)).toEqual(w.cells.map((c) => c.cell));
    expect(m.cells.map((c) => c.kernel.release)).toEqual(w.cells.map((c) => c.kernel.release));
    for (const cell of X86_CELLS) expect(statSync(join(merged, 'cells', cell, 'serial.log')).size, cell).toBeGreaterThan(1000);
    for (const report of ['junit.xml', 'table.md', 'table.html', 'table.json']) expect(existsSync(join(merged, report)), report).toBe(true);
    const junit = readFileSync(join(merged, 'junit.xml'), 'utf8');
    for (const cell of X86_CELLS) expect(junit).toContain(`name="${cell}"`);
  });

  it('refuses to merge a shard of different inputs, naming both directories and what differs (exit 2)', async () => {
    const other = join(root, 'other2');
    // Shard 2 of a run asked another question: the static suite alone (nothing boots).
    const run = await bpfgate(['run', '--suite', 'static', '--cells', CELLS, '--policies', POLICIES, '--schema', CRD_DIR, '--out', other, '--shard', '2/3']);
    expect([0, 1]).toContain(run.exitCode);
    const r = await bpfgate(['merge', shards[0]!, other, shards[2]!, '--out', join(root, 'refused')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(shards[0]!);
    expect(r.stderr).toContain(other);
    expect(r.stderr).toMatch(/suites: static,probe vs static/);
    expect(r.stderr).toMatch(/\[merge-inputs-differ\]$/m);
    expect(existsSync(join(root, 'refused'))).toBe(false);
  });

  it('says which shard is missing, and refuses a shard given twice (exit 2)', async () => {
    const missing = await bpfgate(['merge', shards[0]!, shards[2]!, '--out', join(root, 'partial')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/shard 2\/3 missing/);
    const twice = await bpfgate(['merge', ...shards, shards[1]!, '--out', join(root, 'twice')]);
    expect(twice.exitCode).toBe(2);
    expect(twice.stderr).toMatch(/are both shard 2\/3/);
  });
});

describe('run --shard on the command line', () => {
  it.each(['4/3', '0/2', 'two/3', '3'])('refuses --shard %s with exit 2 and what was expected', async (value) => {
    const r = await bpfgate(['run', '--suite', 'static', '--cells', 'x86_64-6.12', '--shard', value, '--out', tempOut('bad-shard')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--shard.*expected (I\/N|1 <= I <= N)/);
  });

  it('runs an empty shard when there are more shards than cells: complete, exit 0, merged with the others', async () => {
    const root = tempOut('empty-shard');
    const base = ['run', '--suite', 'static', '--cells', 'x86_64-6.12', '--policies', POLICIES, '--schema', CRD_DIR];
    const one = await bpfgate([...base, '--shard', '1/2', '--out', join(root, 's1')]);
    const two = await bpfgate([...base, '--shard', '2/2', '--out', join(root, 's2')]);
    expect(two.exitCode).toBe(0);
    expect(two.stdout).toMatch(/shard 2\/2 has no cells/);
    expect(manifest(join(root, 's2')).shard).toMatchObject({ cells: [], runCells: ['x86_64-6.12'] });
    const merged = await bpfgate(['merge', join(root, 's1'), join(root, 's2'), '--out', join(root, 'merged')]);
    expect(merged.exitCode).toBe(one.exitCode);
    expect(verdicts(readResults(join(root, 'merged')))).toEqual(verdicts(readResults(join(root, 's1'))));
    // --resume keeps to the shard it resumes.
    const resumed = await bpfgate([...base, '--shard', '2/2', '--resume', '--out', join(root, 's1')]);
    expect(resumed.exitCode).toBe(2);
    expect(resumed.stderr).toMatch(/expected the shard of the run being resumed \(1\/2\); got 2\/2 \[resume-mismatch\]/);
  });
});
