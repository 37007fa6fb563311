/**
 * Ctrl-C in the middle of a run: with two guests booted, SIGINT stops the run; no
 * QEMU process and no scratch directory outlives it, it exits 130, and the same
 * command with --resume completes the run with no check lost or repeated.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkKey } from '../../core/check.js';
import { bpfgate, readResults, spawnBpfgate, tempOut } from '../support/cli.js';

/** QEMU processes whose command line names this directory (their initrd lives in its scratch). */
function qemuUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.startsWith('qemu-system-') && cmdline.includes(dir)) pids.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function until(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a run interrupted with two guests booted', () => {
  it('stops every guest, removes its scratch, exits 130, and --resume completes it', async () => {
    const root = tempOut('interrupt');
    const tmp = join(root, 'tmp');
    mkdirSync(tmp);
    const out = join(root, 'out');
    const args = ['run', '--suite', 'probe', '--cells', 'x86_64-6.12,arm64-16k-6.12', '--jobs', '2', '--out', out];
    const env = { TMPDIR: tmp };

    const child = spawnBpfgate(args, { env });
    await until('two guests', () => qemuUnder(tmp).length === 2, 300_000);
    const interruptedAt = Date.now();
    child.kill('SIGINT');
    const run = await child;
    expect(run.exitCode).toBe(130);
    expect(Date.now() - interruptedAt).toBeLessThan(10_000);
    expect(String(run.stderr)).toMatch(/interrupted by SIGINT: \d+ checks on disk .*--resume/);
    expect(qemuUnder(tmp)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    // Nothing the interrupt caused is on disk: a killed guest is not a failed boot.
    const before = readResults(out);
    expect(before.filter((r) => r.reason === 'infra-boot-failed' || r.reason === 'infra-guest-protocol')).toEqual([]);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).cells.map((c: { cell: string }) => c.cell)).toEqual(['x86_64-6.12', 'arm64-16k-6.12']);

    const resumed = await bpfgate([...args, '--resume'], { env });
    // 1: the kernels fail what they fail (no bpf_override_return anywhere), no gate is given.
    expect(resumed.exitCode, resumed.stderr).toBe(1);
    const after = readResults(out);
    const keys = after.map((r) => checkKey(r));
    expect(new Set(keys).size).toBe(keys.length); // nothing repeated
    for (const r of before) expect(after).toContainEqual(r); // nothing lost, nothing rewritten
    expect(after.filter((r) => r.check === 'boot' && r.status === 'pass').map((r) => r.cell).sort()).toEqual(['arm64-16k-6.12', 'x86_64-6.12']);
    expect(after.filter((r) => r.status === 'error')).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
  }, 900_000);
});
