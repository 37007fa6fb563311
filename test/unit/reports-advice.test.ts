/**
 * What to do about each reason: one advice text per reason code, and sharper advice
 * where the real runs' evidence and cell facts say more (test/fixtures/reports).
 */
import { describe, expect, it } from 'vitest';
import { REASONS, type Reason } from '../../core/reasons.js';
import { ADVICE, adviceFor } from '../../reports/advice.js';
import { buildModel, type ModelPair, type ReportModel } from '../../reports/model.js';
import { fixtureManifest, fixtureResults, REPORT_FIXTURES } from '../support/report-fixture.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import type { RunManifest } from '../../core/run-manifest.js';

const model = buildModel(fixtureResults(), fixtureManifest().cells);

function pair(m: ReportModel, subject: string, cell: string): ModelPair {
  const p = m.rows.find((r) => r.subject === subject)?.cells[cell];
  expect(p, `${subject} on ${cell}`).toBeTruthy();
  return p!;
}

describe('advice per reason code', () => {
  it('has a text for every reason code of core/reasons.ts', () => {
    for (const code of Object.keys(REASONS) as Reason[]) {
      expect(ADVICE[code], code).toBeTypeOf('string');
      expect(ADVICE[code].length, code).toBeGreaterThan(40);
    }
  });

  it('covers the codes being added beside it, and says what the tail-call conflict needs', () => {
    for (const code of ['tailcall-attach-type', 'binary-missing', 'no-hooks', 'list-too-large']) expect(ADVICE[code], code).toBeTruthy();
    expect(ADVICE['tailcall-attach-type']).toMatch(/Tetragon >= 1\.6/);
    expect(ADVICE['tailcall-attach-type']).toContain('--disable-kprobe-multi');
  });

  it('gives every cell that is not green of a real run a reason and advice, and a green one neither', () => {
    let shown = 0;
    for (const row of model.rows) {
      for (const p of Object.values(row.cells)) {
        if (!p) continue;
        if (p.status === 'pass') {
          expect(p.advice).toBeNull();
          continue;
        }
        expect(p.reason, row.subject).not.toBeNull();
        expect(p.advice, row.subject).toBeTruthy();
        shown++;
      }
    }
    expect(shown).toBeGreaterThan(50);
  });

  it('tells a policy that hard-codes __x64_sys_* to use syscall: true, from the hook the kernel refused', () => {
    const p = pair(model, 'deny-nsenter', 'arm64-4k-6.12');
    expect(p.reason).toBe('symbol-missing');
    expect(p.advice).toContain('`__x64_sys_setns`');
    expect(p.advice).toContain('`sys_setns` with `syscall: true`');
    // The same reason without an arch-specific symbol gets the general advice.
    expect(adviceFor({ reason: 'symbol-missing', evidence: { missing: 'kprobe:no_such_function' } })).toBe(ADVICE['symbol-missing']);
  });

  it('gives the lsm= list to add bpf to, from the cell\'s own LSM list', () => {
    const p = pair(model, 'lsm-file-open', 'x86_64-6.12+nobpflsm');
    expect(p.reason).toBe('lsm-inactive');
    expect(p.advice).toContain('`lsm=lockdown,capability,landlock,yama,apparmor,ima,evm,bpf`');
  });

  it('says arm64 before 6.4 has no direct calls, and to use a kprobe, on the arm64 6.1 cells only', () => {
    const p = pair(model, 'lsm-file-open', 'arm64-4k-6.1');
    expect(p.reason).toBe('trampoline-unsupported');
    expect(p.advice).toMatch(/^arm64 before 6\.4 has no direct calls/);
    expect(p.advice).toContain('kprobe');
    expect(adviceFor({ reason: 'trampoline-unsupported', evidence: {}, cell: { arch: 'x86_64', kernel: '6.1', lsm: null, pages: 4 } })).toBe(ADVICE['trampoline-unsupported']);
  });

  it('names the page size a ring buffer must be a multiple of on 16K kernels', () => {
    const p = pair(model, 'ringbuf-4096', 'arm64-16k-6.12');
    expect(p.reason).toBe('ringbuf-pagesize');
    expect(p.advice).toContain('16K pages');
    expect(p.advice).toContain('16384 bytes');
  });

  it('tells a K3s node with a stale CRI socket which directory to mount', () => {
    const results = readFileSync(join(REPORT_FIXTURES, 'cluster-socket-file.results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as CheckResult);
    const manifest = JSON.parse(readFileSync(join(REPORT_FIXTURES, 'cluster-socket-file.run.json'), 'utf8')) as RunManifest;
    const p = pair(buildModel(results, manifest.cells), 't1059-004-unix-shell', 'x86_64-6.12');
    expect(p.reason).toBe('cri-socket-stale');
    expect(p.advice).toContain("Mount the socket's directory `/run/k3s/containerd` into the agent, not the socket file `/run/k3s/containerd/containerd.sock`");
  });
});
