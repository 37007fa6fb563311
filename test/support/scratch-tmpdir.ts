/**
 * Vitest global setup: every test's temporary directory (bpfgate's own scratch included)
 * goes under one directory made for the run, removed when the run ends. The tests that
 * assert "nothing left behind" look there; what a test keeps for inspection lives as long
 * as the run, and the machine's /tmp stays as it was.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'bpfgate-tests-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (!process.env.BPFGATE_KEEP_TEST_TMP) rmSync(dir, { recursive: true, force: true });
  };
}
