import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkKey, type CheckResult } from '../../core/check.js';
import { InputError } from '../../core/errors.js';
import { EventBus } from '../../core/events.js';
import { RESULTS_FILE, ResultStore, readResultsDir, serializeResult } from '../../core/results-store.js';
import { realisticResults } from '../support/realistic-results.js';
import { PROJECT_ROOT } from '../support/shared.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const outDir = () => join(root, `out${n++}`);

const RESULTS = realisticResults();
const DESIGN_KEYS = ['cell', 'lane', 'suite', 'subject', 'check', 'status', 'reason', 'evidence', 'durationMs'];

function fileLines(dir: string): string[] {
  return readFileSync(join(dir, RESULTS_FILE), 'utf8').split('\n').filter((l) => l !== '');
}

describe('the result store', () => {
  it('writes one line per check with the design keys first and in order, source last', () => {
    const dir = outDir();
    const withSource = RESULTS.find((r) => r.source && r.status === 'fail');
    const withoutSource = RESULTS.find((r) => !r.source);
    expect(withSource && withoutSource).toBeTruthy();
    using store = ResultStore.open(dir);
    // Keys given in another order must still come out in the design's order.
    const shuffled = Object.fromEntries(Object.entries(withSource as CheckResult).reverse()) as unknown as CheckResult;
    store.append(shuffled);
    store.append(withoutSource as CheckResult);
    const [first, second] = fileLines(dir).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(first ?? {})).toEqual([...DESIGN_KEYS, 'source']);
    expect(Object.keys(second ?? {})).toEqual(DESIGN_KEYS);
    expect(first).toEqual(withSource);
  });

  it('has each check on disk as soon as append returns', () => {
    const dir = outDir();
    using store = ResultStore.open(dir);
    for (const [i, r] of RESULTS.slice(0, 25).entries()) {
      store.append(r);
      expect(fileLines(dir)).toHaveLength(i + 1);
    }
    expect(readFileSync(join(dir, RESULTS_FILE), 'utf8').endsWith('\n')).toBe(true);
  });

  it('records check events from the bus and ignores the others', () => {
    const dir = outDir();
    using store = ResultStore.open(dir);
    const bus = new EventBus().on(store.listener);
    bus.emit({ type: 'run-start', cells: ['x86_64-6.1'], suites: ['policies'] });
    for (const r of RESULTS.slice(0, 3)) bus.emit({ type: 'check', result: r });
    bus.emit({ type: 'cell-end', cell: 'x86_64-6.1', ok: true, durationMs: 10 });
    expect(store.all()).toEqual(RESULTS.slice(0, 3));
    expect(fileLines(dir)).toHaveLength(3);
  });

  it('resumes from an existing file: has() knows every finished check and appends go after them', () => {
    const dir = outDir();
    const done = RESULTS.slice(0, 40);
    const store = ResultStore.open(dir);
    for (const r of done) store.append(r);
    store.close();

    using resumed = ResultStore.open(dir, { resume: true });
    expect(resumed.notices).toEqual([]);
    expect(resumed.all()).toEqual(done);
    for (const r of done) expect(resumed.has(checkKey(r))).toBe(true);
    const next = RESULTS[40] as CheckResult;
    expect(resumed.has(checkKey(next))).toBe(false);
    expect(resumed.get(checkKey(done[7] as CheckResult))).toEqual(done[7]);
    expect(resumed.get(checkKey(next))).toBeUndefined();
    resumed.append(next);
    expect(fileLines(dir)).toHaveLength(41);
  });

  it('starts an empty file when not resuming', () => {
    const dir = outDir();
    const first = ResultStore.open(dir);
    first.append(RESULTS[0] as CheckResult);
    first.close();
    using fresh = ResultStore.open(dir);
    expect(fresh.size).toBe(0);
    expect(readFileSync(join(dir, RESULTS_FILE), 'utf8')).toBe('');
  });

  it('drops a torn last line on resume, truncates the file to the last full line and says so', async () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    const full = RESULTS.slice(0, 5).map((r) => `${serializeResult(r)}\n`).join('');
    const torn = serializeResult(RESULTS[5] as CheckResult).slice(0, 37);
    writeFileSync(join(dir, RESULTS_FILE), full + torn);

    using store = ResultStore.open(dir, { resume: true });
    expect(store.all()).toEqual(RESULTS.slice(0, 5));
    expect(store.has(checkKey(RESULTS[5] as CheckResult))).toBe(false);
    expect(readFileSync(join(dir, RESULTS_FILE), 'utf8')).toBe(full);
    expect(store.notices).toHaveLength(1);
    expect(store.notices[0]).toContain(`${join(dir, RESULTS_FILE)}:6: dropped a torn last line (37 bytes)`);
    store.append(RESULTS[5] as CheckResult);
    await expect(readResultsDir(dir)).resolves.toEqual(RESULTS.slice(0, 6));
  });

  it('refuses to resume over a malformed line in the middle, naming file and line', () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    const lines = RESULTS.slice(0, 3).map(serializeResult);
    lines[1] = '{"cell":"x86_64-6.1","lane":"kernel"';
    writeFileSync(join(dir, RESULTS_FILE), `${lines.join('\n')}\n`);
    let err: unknown;
    try {
      ResultStore.open(dir, { resume: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toBe(`${join(dir, RESULTS_FILE)}:2:37: not valid JSON: Flow map must end with a }`);
  });

  it('keeps the last record of a check that was recorded twice', () => {
    const dir = outDir();
    using store = ResultStore.open(dir);
    const r = RESULTS.find((x) => x.status === 'fail') as CheckResult;
    store.append(r);
    store.append(RESULTS[0] as CheckResult);
    store.append({ ...r, status: 'pass', reason: null, evidence: { attached: true, hits: 4 } });
    expect(store.all().map((x) => x.status)).toEqual(['pass', RESULTS[0]?.status]);
    expect(store.all()[0]?.evidence).toEqual({ attached: true, hits: 4 });
    expect(fileLines(dir)).toHaveLength(3);
  });

  it('keeps a verdict whose evidence JSON cannot hold', () => {
    const dir = outDir();
    using store = ResultStore.open(dir);
    const cyclic: Record<string, unknown> = { errno: 524 };
    cyclic.self = cyclic;
    store.append({ ...(RESULTS[0] as CheckResult), status: 'fail', reason: 'trampoline-unsupported', evidence: cyclic });
    expect(store.all()[0]?.status).toBe('fail');
    expect(String(store.all()[0]?.evidence.unserializableEvidence)).toContain('circular');
  });

  it('loses no finished check when the writer is killed with SIGKILL', async () => {
    // Compile the store as it ships and run it in a child that records checks until it is killed.
    const build = join(PROJECT_ROOT, 'node_modules', '.cache', `bpfgate-store-test-${process.pid}`);
    rmSync(build, { recursive: true, force: true });
    const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--outDir', build, '--rootDir', PROJECT_ROOT, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2023', '--skipLibCheck', '--types', 'node'];
    execFileSync(process.execPath, [tsc, ...flags, join(PROJECT_ROOT, 'core', 'results-store.ts')], { stdio: 'pipe' });
    const resultsJson = join(root, 'kill-results.json');
    writeFileSync(resultsJson, JSON.stringify(RESULTS));
    const child = join(build, 'child.mjs');
    writeFileSync(
      child,
      `import { readFileSync } from 'node:fs';
       import { ResultStore } from './core/results-store.js';
       const results = JSON.parse(readFileSync(process.argv[3], 'utf8'));
       const store = ResultStore.open(process.argv[2]);
       for (let i = 0; ; i++) {
         store.append({ ...results[i % results.length], check: 'repeat-' + i });
         process.stdout.write(i + 1 + '\\n');
       }`,
    );
    const dir = outDir();
    try {
      const proc = spawn(process.execPath, [child, dir, resultsJson], { stdio: ['ignore', 'pipe', 'inherit'] });
      let acknowledged = 0;
      await new Promise<void>((resolvePromise) => {
        proc.stdout.on('data', (chunk: Buffer) => {
          const last = chunk.toString().trim().split('\n').pop();
          acknowledged = Math.max(acknowledged, Number(last));
          if (acknowledged >= 300 && !proc.killed) proc.kill('SIGKILL');
        });
        proc.on('exit', () => resolvePromise());
      });
      expect(acknowledged).toBeGreaterThanOrEqual(300);
      using store = ResultStore.open(dir, { resume: true });
      // Every append the child saw return is on disk; at most one more (finished after its last report).
      expect(store.size).toBeGreaterThanOrEqual(acknowledged);
      expect(store.size).toBeLessThanOrEqual(acknowledged + 1);
      for (let i = 0; i < acknowledged; i++) expect(store.has(checkKey({ ...(RESULTS[i % RESULTS.length] as CheckResult), check: `repeat-${i}` }))).toBe(true);
    } finally {
      rmSync(build, { recursive: true, force: true });
    }
  });
});

describe('reading a results directory', () => {
  it('reads every result back from the directory or from the file itself', async () => {
    const dir = outDir();
    const store = ResultStore.open(dir);
    for (const r of RESULTS) store.append(r);
    store.close();
    expect(await readResultsDir(dir)).toEqual(RESULTS);
    expect(await readResultsDir(join(dir, RESULTS_FILE))).toHaveLength(RESULTS.length);
  });

  it('names file and line of a record with an unknown reason code', async () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    const bad = { ...(RESULTS[0] as CheckResult), status: 'fail', reason: 'symbol-absent' };
    writeFileSync(join(dir, RESULTS_FILE), `${serializeResult(RESULTS[1] as CheckResult)}\n${JSON.stringify(bad)}\n`);
    const line = JSON.stringify(bad);
    const column = line.indexOf('"symbol-absent"') + 1;
    await expect(readResultsDir(dir)).rejects.toThrow(`${join(dir, RESULTS_FILE)}:2:${column}: not a check result: reason: expected a known reason code (got "symbol-absent")`);
  });

  it('names file and line of a record that misses a design key', async () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    const { durationMs: _dropped, ...partial } = RESULTS[0] as CheckResult;
    writeFileSync(join(dir, RESULTS_FILE), `${JSON.stringify(partial)}\n`);
    await expect(readResultsDir(dir)).rejects.toThrow(`${join(dir, RESULTS_FILE)}:1:1: not a check result: (document): missing required field "durationMs"`);
  });

  it('reports a torn last line as an error with a hint to resume', async () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, RESULTS_FILE), `${serializeResult(RESULTS[0] as CheckResult)}\n`);
    appendFileSync(join(dir, RESULTS_FILE), '{"cell":"arm64-16k-6');
    await expect(readResultsDir(dir)).rejects.toThrow(/results\.jsonl:2:1: torn last line .*--resume/);
  });

  it('reports a directory without results', async () => {
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    const err = await readResultsDir(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('results-missing');
  });
});
