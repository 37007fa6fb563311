/**
 * The kernel lane for real: Debian kernels booted in QEMU (TCG), the probe suite
 * and the bug reproductions judged from what the guests measured. One x86_64 and
 * one arm64 16K cell, as CI can afford; `bpfgate run --suite probe` covers all ten.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bpfgate, find, readResults, tempOut } from '../support/cli.js';
import type { CheckResult } from '../../core/check.js';

const CELLS = 'x86_64-6.12,arm64-16k-6.12';

describe('the probe suite on real kernels', () => {
  let out: string;
  let results: CheckResult[];
  let exitCode: number;

  beforeAll(async () => {
    out = tempOut('probe');
    const run = await bpfgate(['run', '--suite', 'probe', '--cells', CELLS, '--out', out]);
    exitCode = run.exitCode;
    results = readResults(out);
  }, 600_000);

  it('measures the page size and kernel release in each guest', () => {
    const x86 = find(results, 'x86_64-6.12', 'kernel', 'facts');
    const arm = find(results, 'arm64-16k-6.12', 'kernel', 'facts');
    expect(x86.evidence).toMatchObject({ machine: 'x86_64', pageKiB: 4, btf: true });
    expect(arm.evidence).toMatchObject({ machine: 'aarch64', pageKiB: 16, btf: true });
    expect(String(arm.evidence.release)).toMatch(/^6\.12\..*arm64-16k$/);
    expect(arm.evidence.lsm).toContain('bpf');
  });

  it('refuses a 4096-byte ring buffer on 16K pages and accepts it on 4K', () => {
    expect(find(results, 'arm64-16k-6.12', 'ringbuf-4096')).toMatchObject({ status: 'fail', reason: 'ringbuf-pagesize' });
    expect(String(find(results, 'arm64-16k-6.12', 'ringbuf-4096').evidence.error)).toContain('Invalid argument');
    expect(find(results, 'arm64-16k-6.12', 'ringbuf-16384').status).toBe('pass');
    expect(find(results, 'x86_64-6.12', 'ringbuf-4096').status).toBe('pass');
  });

  it('passes a feature only with hits counted after the attach', () => {
    for (const cell of ['x86_64-6.12', 'arm64-16k-6.12']) {
      for (const feature of ['kprobe', 'fentry', 'fmod-ret', 'lsm', 'tracepoint']) {
        const r = find(results, cell, feature);
        expect(r.status, `${cell} ${feature}`).toBe('pass');
        expect(r.evidence.hits, `${cell} ${feature}`).toBeGreaterThan(0);
      }
    }
  });

  it('finds kprobe.multi on x86_64 6.12 only, and bpf_override_return nowhere', () => {
    expect(find(results, 'x86_64-6.12', 'kprobe-multi').status).toBe('pass');
    expect(find(results, 'arm64-16k-6.12', 'kprobe-multi')).toMatchObject({ status: 'fail', reason: 'kprobe-multi-unsupported' });
    for (const cell of ['x86_64-6.12', 'arm64-16k-6.12']) {
      const r = find(results, cell, 'override-return');
      expect(r).toMatchObject({ status: 'fail', reason: 'override-unsupported' });
      expect(String(r.evidence.error)).toContain('bpf_override_return');
    }
  });

  it('refuses a kprobe.multi and a kprobe program in one tail-call map on x86_64 6.12, and has nothing to mix where kprobe.multi is absent', () => {
    const mixed = find(results, 'x86_64-6.12', 'kprobe-multi-tailcall');
    expect(mixed).toMatchObject({ status: 'fail', reason: 'tailcall-attach-type' });
    expect(String(mixed.evidence.error)).toMatch(/prog 'tail_target'.*Invalid argument/);
    expect(find(results, 'arm64-16k-6.12', 'kprobe-multi-tailcall')).toMatchObject({ status: 'skip', evidence: { kernelRefusesMixedTailCalls: true } });
  });

  it('keeps each guest console and boots every cell to its final marker', () => {
    for (const cell of CELLS.split(',')) {
      expect(find(results, cell, 'kernel', 'boot')).toMatchObject({ status: 'pass' });
      const log = readFileSync(join(out, 'cells', cell, 'serial.log'), 'latin1');
      expect(log).toMatch(/@@BPFGATE:\d+:done:/);
    }
  });

  it('exits 1 without a baseline, since features are missing, and writes every report', () => {
    expect(exitCode).toBe(1);
    for (const f of ['junit.xml', 'table.md', 'table.html', 'table.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });
});

describe('bpfgate repro on real kernels', () => {
  it('reproduces ringbuf-pagesize on 16K pages and tailcall-attach-type on x86_64 6.12, each absent on the other cell', async () => {
    const out = tempOut('repro');
    const run = await bpfgate(['repro', 'ringbuf-pagesize', 'tailcall-attach-type', '--cells', CELLS, '--out', out]);
    expect(run.stdout).toContain('ringbuf-pagesize: reproduced');
    expect(run.stdout).toMatch(/shows on arm64-16k-6\.12: ringbuf4096="Error: map create failed: Invalid argument"/);
    expect(run.stdout).toContain('tailcall-attach-type: reproduced');
    expect(run.stdout).toMatch(/shows on x86_64-6\.12: kprobe\.multi attached, \d+ hits; kprobe sharing its tail-call map refused: .*Invalid argument/);
    expect(run.stdout).toMatch(/absent on arm64-16k-6\.12: kprobe\.multi refused: .*Operation not supported/);
    expect(run.exitCode).toBe(0);
    const results = readResults(out).filter((r) => r.suite === 'repro');
    expect(results.map((r) => [r.subject, r.cell, r.status, r.evidence.observed]).sort()).toEqual([
      ['ringbuf-pagesize', 'arm64-16k-6.12', 'pass', 'shows'],
      ['ringbuf-pagesize', 'x86_64-6.12', 'pass', 'absent'],
      ['tailcall-attach-type', 'arm64-16k-6.12', 'pass', 'absent'],
      ['tailcall-attach-type', 'x86_64-6.12', 'pass', 'shows'],
    ]);
  }, 300_000);
});
