/**
 * Infrastructure trouble is an `error` with its own infra-* reason, on the cell
 * concerned only, within its timeout; a run killed with SIGKILL and rerun with
 * --resume loses nothing and repeats nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkKey, type CheckResult } from '../../core/check.js';
import { fetchKernel } from '../../runners/qemu/kernel-cache.js';
import { bpfgate, find, readResults, spawnBpfgate, tempOut } from '../support/cli.js';

describe('cells whose kernel is garbage, panics or hangs', () => {
  let out: string;
  let results: CheckResult[];
  let started: number;
  let elapsed: number;
  const TIMEOUT_S = 45;

  beforeAll(async () => {
    const real = await fetchKernel({ kind: 'debian', suite: 'trixie', package: 'linux-image-amd64', debArch: 'amd64' });
    const dir = tempOut('faults');
    writeFileSync(join(dir, 'garbage.img'), Buffer.alloc(4 << 20, 0x5a));
    const kernel = (label: string, image: string) =>
      `{ arch: x86_64, pages: 4k, label: ${label}, file: { image: ${JSON.stringify(image)}, config: ${JSON.stringify(real.config)} } }`;
    writeFileSync(
      join(dir, 'matrix.yaml'),
      [
        'kernels:',
        `  - ${kernel('garbage', './garbage.img')}`,
        '  - { arch: x86_64, pages: 4k, label: "6.12", debian: { suite: trixie, package: linux-image-amd64 } }',
        'include:',
        // No init to run and no root to mount: the kernel panics and QEMU exits before "done".
        `  - { kernel: ${kernel('panics', real.image)}, boot: { name: noinit, args: ["rdinit=/nonexistent", "root=/dev/nonexistent"] } }`,
        // busybox as init, sleeping: the guest never says "done".
        `  - { kernel: ${kernel('hangs', real.image)}, boot: { name: sleeps, args: ["rdinit=/bin/busybox", "--", "sleep", "3600"] } }`,
      ].join('\n'),
    );
    out = join(dir, 'out');
    started = Date.now();
    await bpfgate(['run', '--matrix', join(dir, 'matrix.yaml'), '--suite', 'probe', '--out', out, '--jobs', '2', '--timeout', String(TIMEOUT_S)]);
    elapsed = Date.now() - started;
    results = readResults(out);
  }, 600_000);

  it('charges a garbage kernel file to infra-kernel-invalid without booting it', () => {
    const boot = find(results, 'x86_64-garbage', 'kernel', 'boot');
    expect(boot).toMatchObject({ status: 'error', reason: 'infra-kernel-invalid' });
    expect(String(boot.evidence.error)).toContain('garbage.img');
    expect(find(results, 'x86_64-garbage', 'fentry')).toMatchObject({ status: 'error', reason: 'infra-kernel-invalid' });
  });

  it('charges a guest that dies before its final marker to infra-boot-failed, with the console tail', () => {
    const boot = find(results, 'x86_64-panics+noinit', 'kernel', 'boot');
    expect(boot).toMatchObject({ status: 'error', reason: 'infra-boot-failed' });
    expect(String(boot.evidence.consoleTail)).toMatch(/Kernel panic|VFS|No working init/);
  });

  it('charges a guest that never finishes to infra-boot-timeout, within the timeout', () => {
    const boot = find(results, 'x86_64-hangs+sleeps', 'kernel', 'boot');
    expect(boot).toMatchObject({ status: 'error', reason: 'infra-boot-timeout' });
    expect(boot.evidence.wallMs as number).toBeGreaterThanOrEqual(TIMEOUT_S * 1000);
    expect(boot.evidence.wallMs as number).toBeLessThan(TIMEOUT_S * 1000 + 5000);
    expect(find(results, 'x86_64-hangs+sleeps', 'kprobe')).toMatchObject({ status: 'error', reason: 'infra-boot-timeout' });
  });

  it('still finishes the healthy cell, and the run ends soon after the slowest timeout', () => {
    expect(find(results, 'x86_64-6.12', 'kernel', 'boot').status).toBe('pass');
    expect(find(results, 'x86_64-6.12', 'fentry').status).toBe('pass');
    expect(elapsed).toBeLessThan(3 * TIMEOUT_S * 1000);
  });
});

describe('a run killed with SIGKILL and resumed', () => {
  it('keeps every finished check, runs only the rest, and writes nothing twice', async () => {
    const out = tempOut('resume');
    const args = ['run', '--suite', 'probe', '--cells', 'x86_64-6.12,arm64-16k-6.12', '--jobs', '1', '--out', out];
    const child = spawnBpfgate(args);
    // Kill as soon as the first cell is complete on disk (its boot check is its last).
    const file = join(out, 'results.jsonl');
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 240_000;
      const poll = setInterval(() => {
        let text = '';
        try {
          text = readFileSync(file, 'utf8');
        } catch {
          /* not created yet */
        }
        if (/"check":"boot"/.test(text)) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        } else if (Date.now() > deadline) {
          clearInterval(poll);
          child.kill('SIGKILL');
          reject(new Error('the first cell never finished'));
        }
      }, 100);
    });
    await child;
    const before = readResults(out);
    const firstCell = before.find((r) => r.check === 'boot')!.cell;
    expect(before.filter((r) => r.cell === firstCell).length).toBeGreaterThanOrEqual(13);

    const resumed = await bpfgate([...args, '--resume']);
    expect(resumed.stderr).toContain(`${firstCell}: resume every check already on disk`);
    const after = readResults(out);
    const keys = after.map((r) => checkKey(r));
    expect(new Set(keys).size).toBe(keys.length); // nothing repeated
    for (const r of before) expect(after).toContainEqual(r); // nothing lost, nothing rewritten
    const cells = new Set(after.map((r) => r.cell));
    expect([...cells].sort()).toEqual(['arm64-16k-6.12', 'x86_64-6.12']);
    expect(after.filter((r) => r.check === 'boot' && r.status === 'pass')).toHaveLength(2);
  }, 600_000);
});
