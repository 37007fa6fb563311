import { describe, expect, it } from 'vitest';
import type { CheckResult, CheckStatus } from '../../core/check.js';
import { buildModel, cellFromId, worse } from '../../reports/model.js';
import { DEFAULT_CELL_IDS, DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const RESULTS = realisticResults();
const CELLS = DEFAULT_FACTS;

/** A deterministic shuffle, so the test does not depend on luck. */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('the report model', () => {
  it('orders statuses error > fail > skip > pass', () => {
    const order: CheckStatus[] = ['pass', 'skip', 'fail', 'error'];
    for (const [i, a] of order.entries()) for (const [j, b] of order.entries()) expect(worse(a, b)).toBe(order[Math.max(i, j)]);
  });

  it('has a column per cell of run.json in its order, then the cells only the results name', () => {
    const model = buildModel(RESULTS, CELLS);
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static']);
    expect(model.cells[9]).toEqual({
      id: 'arm64-16k-6.12+nobpflsm',
      arch: 'arm64',
      pages: 16,
      kernel: '6.12',
      release: '6.12.118+deb13-arm64-16k',
      kernelSource: 'trixie-security linux-image-6.12.118+deb13-arm64-16k 6.12.118-1',
      bootArgs: ['lsm=lockdown,capability,landlock,yama,apparmor'],
      lsm: ['lockdown', 'capability', 'landlock', 'yama', 'apparmor', 'ima', 'evm'],
      accel: 'tcg',
      agent: null,
      platform: 'qemu',
    });
    expect(model.cells[10]).toEqual(cellFromId('static'));
    expect(model.cells[10]?.arch).toBeNull();
  });

  it('guesses nothing from a cell id when run.json is not at hand', () => {
    const model = buildModel(RESULTS);
    const nobpf = model.cells.find((c) => c.id === 'arm64-4k-6.1+nobpflsm');
    expect(nobpf).toEqual(cellFromId('arm64-4k-6.1+nobpflsm'));
    expect(nobpf).toMatchObject({ arch: null, pages: null, kernel: null, lsm: null });
    // Without run.json there is no matrix order: cells come sorted by id.
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static'].sort());
  });

  it('gives each policy x cell its worst status and the first reason of that status', () => {
    const model = buildModel(RESULTS, CELLS);
    const row = (s: string) => model.rows.find((r) => r.subject === s);
    const nsenter = row('deny-nsenter');
    expect(nsenter?.cells['x86_64-6.1']).toMatchObject({ status: 'pass', reason: null });
    expect(nsenter?.cells['arm64-4k-6.12']).toMatchObject({ status: 'fail', reason: 'symbol-missing', reasons: ['symbol-missing'] });
    expect(nsenter?.status).toBe('fail');
    const lsm = row('lsm-file-open');
    expect(lsm?.cells['arm64-4k-6.1']?.reason).toBe('trampoline-unsupported');
    expect(lsm?.cells['x86_64-6.12+nobpflsm']?.reason).toBe('lsm-inactive');
    expect(lsm?.cells['arm64-16k-6.12']?.status).toBe('pass');
    // The uprobe policy has no trigger: its hooks pass, its trigger check is skipped as untested.
    const uprobe = row('uprobe');
    expect(uprobe?.cells['x86_64-6.1']).toMatchObject({ status: 'skip', reason: 'untested' });
    expect(row('kprobe-multi')?.cells['arm64-16k-6.12+nobpflsm']).toMatchObject({ status: 'error', reason: 'infra-guest-protocol' });
    expect(row('kprobe-multi')?.cells['static']).toBeNull();
  });

  it('lets an error outrank a failure in the same pair and keeps both reasons', () => {
    const extra: CheckResult = {
      cell: 'arm64-4k-6.12',
      lane: 'kernel',
      suite: 'triggers',
      subject: 'deny-nsenter',
      check: 'trigger',
      status: 'error',
      reason: 'infra-boot-timeout',
      evidence: { timeoutMs: 120000, lastLine: '[    4.2] Run /init as init process' },
      durationMs: 120000,
    };
    const pair = buildModel([...RESULTS, extra], CELLS).rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-4k-6.12'];
    expect(pair?.status).toBe('error');
    expect(pair?.reason).toBe('infra-boot-timeout');
    expect(new Set(pair?.reasons)).toEqual(new Set(['symbol-missing', 'infra-boot-timeout']));
    expect(pair?.counts).toEqual({ error: 1, fail: 1, skip: 0, pass: 0 });
  });

  it('keeps every check of a pair with its evidence, in a stable order', () => {
    const model = buildModel(RESULTS, CELLS);
    const pair = model.rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-16k-6.12'];
    expect(pair?.checks.map((c) => c.check)).toEqual(['hook:kprobe:__x64_sys_setns', 'trigger']);
    expect(pair?.checks[0]?.evidence).toMatchObject({ symbol: '__x64_sys_setns', kallsyms: 'absent' });
    expect(pair?.checks[0]?.source?.file).toMatch(/02_nsenter\.yaml$/);
  });

  it('is the same whatever order the checks finished in', () => {
    expect(buildModel(shuffled(RESULTS), CELLS)).toEqual(buildModel(RESULTS, CELLS));
  });

  it('counts every check once, per status, per reason and per row', () => {
    const model = buildModel(RESULTS, CELLS);
    const byStatus = (s: CheckStatus) => RESULTS.filter((r) => r.status === s).length;
    expect(model.summary.counts).toEqual({ pass: byStatus('pass'), fail: byStatus('fail'), error: byStatus('error'), skip: byStatus('skip') });
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(model.rows.reduce((n, r) => n + r.counts.pass + r.counts.fail + r.counts.error + r.counts.skip, 0)).toBe(RESULTS.length);
    expect(model.reasons.find((r) => r.code === 'symbol-missing')?.count).toBe(RESULTS.filter((r) => r.reason === 'symbol-missing').length);
    expect(model.reasons.map((r) => r.code)).toEqual(['infra-guest-protocol', 'lsm-inactive', 'ringbuf-pagesize', 'symbol-missing', 'trampoline-unsupported', 'untested']);
    expect(model.rows.map((r) => r.subject)).toEqual([...model.rows.map((r) => r.subject)].sort());
  });

  it('takes the last result of a check recorded twice', () => {
    const first = RESULTS.find((r) => r.subject === 'deny-nsenter' && r.cell === 'arm64-4k-6.1' && r.status === 'fail') as CheckResult;
    const rerun: CheckResult = { ...first, status: 'pass', reason: null, evidence: { attached: true, hits: 3 } };
    const model = buildModel([...RESULTS, rerun], CELLS);
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(model.rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-4k-6.1']?.status).toBe('pass');
  });
});
