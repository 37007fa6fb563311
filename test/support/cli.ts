/**
 * Running the built CLI as a user would, for end-to-end tests: real arguments,
 * real output directory, real exit code.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { CheckResult } from '../../core/check.js';
import { CLI } from './shared.js';

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function bpfgate(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliRun> {
  const r = await execa('node', [CLI, ...args], { reject: false, cwd: opts.cwd, env: { CI: 'true', ...opts.env } });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Start the CLI without waiting, for tests that kill it. */
export function spawnBpfgate(args: string[], opts: { env?: Record<string, string> } = {}): ResultPromise {
  return execa('node', [CLI, ...args], { reject: false, env: { CI: 'true', ...opts.env } });
}

export function tempOut(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `bpfgate-${prefix}-`));
}

export function readResults(outDir: string): CheckResult[] {
  return readFileSync(join(outDir, 'results.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as CheckResult);
}

export function find(results: CheckResult[], cell: string, subject: string, check = 'feature'): CheckResult {
  const r = results.find((x) => x.cell === cell && x.subject === subject && x.check === check);
  if (!r) throw new Error(`no result for ${cell} ${subject} ${check}; have ${results.map((x) => `${x.cell}/${x.subject}/${x.check}`).join(', ')}`);
  return r;
}
