/**
 * The gate on real results: a finished probe run of the default matrix, resumed
 * (nothing boots: every check is on disk) and judged against baselines.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify, parse } from 'yaml';
import { bpfgate, tempOut } from '../support/cli.js';
import { PROJECT_ROOT } from '../support/shared.js';

const REAL = join(PROJECT_ROOT, 'test', 'fixtures', 'results', 'probe-default-matrix.jsonl');

function finishedRun(): string {
  const out = join(tempOut('gate'), 'out');
  mkdirSync(out, { recursive: true });
  copyFileSync(REAL, join(out, 'results.jsonl'));
  return out;
}

async function baselineOf(out: string): Promise<Array<Record<string, string>>> {
  const run = await bpfgate(['baseline', '--from', out]);
  expect(run.exitCode).toBe(0);
  return parse(run.stdout) as Array<Record<string, string>>;
}

const gate = (out: string, baseline: string) => bpfgate(['run', '--suite', 'probe', '--resume', '--out', out, '--baseline', baseline]);

describe('the gate on the results of a real default-matrix run', () => {
  it('fails without a baseline: the kernels lack features', async () => {
    const out = finishedRun();
    const run = await bpfgate(['run', '--suite', 'probe', '--resume', '--out', out]);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/FAIL arm64-16k-6\.12 probe\/ringbuf-4096 feature: ringbuf-pagesize/);
  });

  it('passes when the baseline lists every known failure, booting nothing', async () => {
    const out = finishedRun();
    const entries = await baselineOf(out);
    expect(entries.length).toBeGreaterThanOrEqual(6);
    const file = join(out, '..', 'baseline.yaml');
    writeFileSync(file, stringify(entries));
    const run = await gate(out, file);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toMatch(/resume every check already on disk/);
    expect(run.stdout).toMatch(/failures expected by the baseline/);
  });

  it('fails on a failure the baseline does not list, and names it', async () => {
    const out = finishedRun();
    const entries = (await baselineOf(out)).filter((e) => e.subject !== 'ringbuf-4096');
    const file = join(out, '..', 'baseline.yaml');
    writeFileSync(file, stringify(entries));
    const run = await gate(out, file);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/Unexpected \(2\)/);
    expect(run.stdout).toContain('FAIL arm64-16k-6.12 probe/ringbuf-4096 feature: ringbuf-pagesize');
  });

  it('treats a known failure with another reason as a change', async () => {
    const out = finishedRun();
    const entries = (await baselineOf(out)).map((e) => (e.subject === 'ringbuf-4096' ? { ...e, reason: 'attach-failed' } : e));
    const file = join(out, '..', 'baseline.yaml');
    writeFileSync(file, stringify(entries));
    expect((await gate(out, file)).exitCode).toBe(1);
  });

  it('notes a baseline entry whose checks now pass', async () => {
    const out = finishedRun();
    const entries = [...(await baselineOf(out)), { cell: 'x86_64-6.12', subject: 'fentry', check: 'feature', reason: 'trampoline-unsupported' }];
    const file = join(out, '..', 'baseline.yaml');
    writeFileSync(file, stringify(entries));
    const run = await gate(out, file);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/note: baseline entry .*x86_64-6\.12 fentry trampoline-unsupported\) now passes/);
  });
});
