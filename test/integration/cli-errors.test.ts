/**
 * The built CLI's errors and exit codes, end to end (needs `npm run build`; boots nothing):
 * one line on stderr per error, the README's exit codes, --version, and a baseline
 * written in one directory gating a run started from another.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfgate, tempOut } from '../support/cli.js';
import { CORPUS, CRD_DIR, PROJECT_ROOT } from '../support/shared.js';

const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function file(name: string, text: string): string {
  const path = join(tempOut('cli-errors'), name);
  writeFileSync(path, text);
  return path;
}

describe('bpfgate --version', () => {
  it('prints the version of package.json, with --version and -V', async () => {
    for (const flag of ['--version', '-V']) {
      const run = await bpfgate([flag]);
      expect([run.exitCode, run.stdout, run.stderr]).toEqual([0, VERSION, '']);
    }
  });
});

describe('errors of the built CLI', () => {
  it('exits 2 on a malformed lock file, with one line naming file, line and column', async () => {
    const lock = file('bpfgate.lock.json', '{\n  "lockfileVersion": 1,\n  "kernels": [,]\n}\n');
    const fetch = await bpfgate(['kernels', 'fetch', '--lock', lock, 'trixie/linux-image-amd64']);
    expect([fetch.exitCode, fetch.stderr]).toEqual([2, `bpfgate: ${lock}:3:15: not valid JSON: Unexpected , in flow sequence [lockfile-json]`]);
    // `run` says it before anything boots.
    const out = tempOut('cli-errors-run');
    const run = await bpfgate(['run', '--suite', 'probe', '--cells', 'x86_64-6.12', '--lock', lock, '--out', out]);
    expect([run.exitCode, run.stderr]).toEqual([2, `bpfgate: ${lock}:3:15: not valid JSON: Unexpected , in flow sequence [lockfile-json]`]);
  });

  it('exits 2 on a lock file of the wrong shape, and on a missing one', async () => {
    const lock = file('bpfgate.lock.json', '{\n  "lockfileVersion": 2,\n  "kernels": []\n}\n');
    const wrong = await bpfgate(['kernels', 'fetch', '--lock', lock, 'trixie/linux-image-amd64']);
    expect([wrong.exitCode, wrong.stderr]).toEqual([2, `bpfgate: ${lock}:2:22: lockfileVersion: expected 1 (got 2) [lockfile-schema]`]);
    const missing = join(tempOut('cli-errors'), 'none.lock.json');
    const absent = await bpfgate(['kernels', 'fetch', '--lock', missing, 'trixie/linux-image-amd64']);
    expect(absent.exitCode).toBe(2);
    expect(absent.stderr).toMatch(new RegExp(`^bpfgate: ${missing}: cannot read the lock file: ENOENT[^\\n]* \\[lockfile-missing\\]$`));
  });

  it('exits 2 on a bad config file and a bad matrix file, with file, line, column and field', async () => {
    const config = file('bpfgate.config.yaml', 'schema: crd/\njobs: 0\n');
    const badConfig = await bpfgate(['--config', config, 'lint', CORPUS]);
    expect([badConfig.exitCode, badConfig.stderr]).toEqual([2, `bpfgate: ${config}:2:7: jobs: expected at least 1 (got 0) [config-schema]`]);
    const matrix = file('matrix.yaml', 'kernels:\n  - arch: riscv64\n    label: "6.1"\n    debian: { suite: bookworm, package: linux-image-amd64 }\n');
    const badMatrix = await bpfgate(['run', '--suite', 'static', '--matrix', matrix, '--out', tempOut('cli-errors-matrix')]);
    expect([badMatrix.exitCode, badMatrix.stderr]).toEqual([2, `bpfgate: ${matrix}:2:11: kernels[0].arch: expected one of: x86_64, arm64 (got "riscv64") [matrix-schema]`]);
  });

  it('exits 2 on a usage error with commander\'s words on one line, and a hint', async () => {
    const run = await bpfgate(['lint']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr.split('\n')).toEqual(["bpfgate: missing required argument 'paths' [usage]", '(add --help for usage)']);
    const bad = await bpfgate(['table', '--from', '.', '--format', 'pdf']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/^bpfgate: option '--format <format>' argument 'pdf' is invalid\. Allowed choices are md, html, json, attack\. \[usage\]$/);
  });

  it('exits 2 when --compare names a directory without results, before anything runs', async () => {
    const missing = join(tempOut('cli-errors-compare'), 'last-week');
    const table = await bpfgate(['table', '--from', join(PROJECT_ROOT, 'test', 'fixtures', 'reports', 'default-matrix.results.jsonl'), '--compare', missing]);
    expect([table.exitCode, table.stdout]).toEqual([2, '']);
    expect(table.stderr).toMatch(new RegExp(`^bpfgate: ${missing}: no results here: .*\\[results-missing\\]$`));
    const run = await bpfgate(['run', '--suite', 'static', '--cells', 'x86_64-6.12', '--policies', join(CORPUS, 'tetragon-examples', 'bpf.yaml'), '--compare', missing, '--out', tempOut('cli-errors-compare-run')]);
    expect([run.exitCode, run.stderr]).toEqual([2, table.stderr]);
  });

  it('prints lint\'s bad input on stderr through the same printer', async () => {
    const missing = join(tempOut('cli-errors'), 'no-such-policies');
    const run = await bpfgate(['lint', missing]);
    expect([run.exitCode, run.stdout, run.stderr]).toEqual([2, '', `bpfgate: ${missing}: no such file or directory [policy-path-missing]`]);
  });
});

describe('a baseline written in one directory', () => {
  it('gates the same run started from another directory, with --policies given another way', async () => {
    const cells = 'x86_64-6.12';
    const first = tempOut('subjects-a');
    const fromProject = await bpfgate(['run', '--suite', 'static', '--cells', cells, '--schema', CRD_DIR, '--policies', relative(PROJECT_ROOT, CORPUS), '--out', first], { cwd: PROJECT_ROOT });
    expect(fromProject.exitCode).toBe(1); // the corpus has invalid policies
    const written = await bpfgate(['baseline', '--from', first]);
    expect(written.exitCode).toBe(0);
    expect(written.stdout).not.toContain('../');
    const baseline = join(first, '..', 'baseline.yaml');
    writeFileSync(baseline, written.stdout);

    const second = tempOut('subjects-b');
    const fromCorpus = await bpfgate(['run', '--suite', 'static', '--cells', cells, '--schema', 'crd', '--policies', '.', '--out', second, '--baseline', baseline], { cwd: CORPUS });
    expect(fromCorpus.stdout).toMatch(/failures expected by the baseline/);
    expect(fromCorpus.exitCode).toBe(0);
  });
});
