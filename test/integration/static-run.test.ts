/**
 * The foundation end to end, through the built CLI: lint on the real corpus, and
 * `run --suite static` writing the whole output directory for the ten default cells.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { bpfgate, readResults, tempOut } from '../support/cli.js';
import { DEFAULT_CELL_IDS } from '../support/design.js';
import { CORPUS, CRD_DIR, EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const DEFAULT_CELLS = [...DEFAULT_CELL_IDS];

describe('bpfgate lint on the real corpus', () => {
  it('accepts all 71 example policies against the real CRD', async () => {
    const run = await bpfgate(['lint', '--schema', CRD_DIR, EXAMPLES]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/\b71 valid\b/);
  });

  it('rejects the book policies with file, line and schema path, and exits 1', async () => {
    const run = await bpfgate(['lint', '--schema', CRD_DIR, EXTRA]);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/04_deny_c2_connection\.yaml:29:\d+: yaml-invalid/);
    expect(run.stdout).toMatch(/elastic_keystore_fd_install\.yaml:27:\d+: schema-invalid: spec\.kprobes\[0\]\.selectors\[0\]\.matchActions\[0\]\.action/);
    expect(run.stdout).toMatch(/05_deny_write_to_ops_bank_account\.yaml:32:\d+: schema-invalid: .*operator.*Instring/);
  });

  it('prints one JSON object with a documents array in --format json', async () => {
    const run = await bpfgate(['lint', '--schema', CRD_DIR, '--arch', 'x86_64,arm64', '--format', 'json', EXTRA]);
    const report = JSON.parse(run.stdout) as { documents: Array<Record<string, unknown>> };
    const invalid = report.documents.filter((d) => d.valid === false);
    expect(invalid.length).toBeGreaterThanOrEqual(6);
    for (const d of report.documents) {
      expect(Object.keys(d)).toEqual(expect.arrayContaining(['file', 'line', 'kind', 'name', 'valid', 'errors', 'findings']));
    }
    const nsenter = report.documents.find((d) => String(d.file).endsWith('02_nsenter.yaml'))!;
    expect(nsenter.findings).toEqual(expect.arrayContaining([expect.objectContaining({ arch: 'arm64', reason: 'symbol-missing' })]));
  });

  it('says plainly that the schema check did not run without --schema', async () => {
    const run = await bpfgate(['lint', EXAMPLES]);
    expect(run.exitCode).toBe(0);
    expect(`${run.stdout}${run.stderr}`).toMatch(/schema.*(not|did not) (run|checked)/i);
    expect(`${run.stdout}${run.stderr}`).toContain('--schema');
  });
});

describe('bpfgate run --suite static on the default matrix', () => {
  let out: string;
  let results: CheckResult[];
  let exitCode: number;

  beforeAll(async () => {
    out = tempOut('static');
    const run = await bpfgate(['run', '--suite', 'static', '--schema', CRD_DIR, '--policies', CORPUS, '--out', out]);
    exitCode = run.exitCode;
    results = readResults(out);
  }, 120_000);

  it('checks every policy on all ten cells of the default matrix', () => {
    expect([...new Set(results.map((r) => r.cell))].sort()).toEqual([...DEFAULT_CELLS].sort());
    const perCell = DEFAULT_CELLS.map((c) => results.filter((r) => r.cell === c && r.check === 'schema').length);
    expect(new Set(perCell).size).toBe(1);
    expect(perCell[0]).toBeGreaterThanOrEqual(88);
  });

  it('shows x86_64-only policies as symbol-missing on the arm64 cells only', () => {
    const nsenter = results.filter((r) => r.subject === 'deny-nsenter' && r.check === 'portability');
    for (const r of nsenter) {
      expect(r.status, r.cell).toBe(r.cell.startsWith('arm64') ? 'fail' : 'pass');
      if (r.cell.startsWith('arm64')) expect(r.reason).toBe('symbol-missing');
    }
    expect(nsenter).toHaveLength(10);
  });

  it('predicts lsm-inactive for LSM policies on the +nobpflsm cells', () => {
    const lsm = results.filter((r) => r.subject === 'lsm-file-open' && r.check === 'needs');
    for (const r of lsm.filter((x) => x.cell.endsWith('+nobpflsm'))) expect(r.reason, r.cell).toBe('lsm-inactive');
    expect(lsm.find((r) => r.cell === 'x86_64-6.12')?.status).toBe('pass');
  });

  it('writes a junit.xml whose counts match results.jsonl, and the three tables', () => {
    const junit = readFileSync(join(out, 'junit.xml'), 'utf8');
    const tests = [...junit.matchAll(/<testsuite [^>]*tests="(\d+)"/g)].reduce((n, m) => n + Number(m[1]), 0);
    const failures = [...junit.matchAll(/<testsuite [^>]*failures="(\d+)"/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(tests).toBe(results.length);
    expect(failures).toBe(results.filter((r) => r.status === 'fail').length);
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toContain('`arm64-16k-6.12+nobpflsm`');
    const table = JSON.parse(readFileSync(join(out, 'table.json'), 'utf8')) as { cells: unknown[] };
    expect(table.cells).toHaveLength(10);
    expect(readFileSync(join(out, 'table.html'), 'utf8')).toContain('<html');
  });

  it('exits 1: the corpus has invalid policies and no baseline expects them', () => {
    expect(exitCode).toBe(1);
  });
});

describe('bpfgate run --compare: what changed since a previous run', () => {
  it('opens the reports with the checks one run has and the other has not, and writes the ATT&CK layer', async () => {
    const before = tempOut('compare-before');
    const now = tempOut('compare-now');
    const policies = (...names: string[]) => names.map((n) => join(EXAMPLES, n)).join(',');
    const common = ['run', '--suite', 'static', '--cells', 'x86_64-6.12', '--schema', CRD_DIR];
    expect((await bpfgate([...common, '--policies', policies('bpf.yaml', 'lsm_file_open.yaml'), '--out', before])).exitCode).toBe(0);
    const run = await bpfgate([...common, '--policies', policies('bpf.yaml', 'kprobe_commit_creds.yaml'), '--compare', before, '--out', now]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('attack-layer.json');
    const table = JSON.parse(readFileSync(join(now, 'table.json'), 'utf8')) as { comparison: { against: string; counts: Record<string, number>; changes: { kind: string; subject: string }[] } };
    const checksOf = (dir: string, subject: string) => readResults(dir).filter((r) => r.subject === subject).length;
    expect(table.comparison.against).toBe(before);
    expect(table.comparison.counts).toEqual({ worse: 0, changed: 0, better: 0, new: checksOf(now, 'commit-creds'), gone: checksOf(before, 'lsm-file-open') });
    expect(new Set(table.comparison.changes.map((c) => `${c.kind} ${c.subject}`))).toEqual(new Set(['new commit-creds', 'gone lsm-file-open']));
    const md = readFileSync(join(now, 'table.md'), 'utf8').split('\n');
    expect(md[2]).toBe('### What changed');
    expect(md).toContain(`Against \`${before}\`: 0 worse, 0 changed reason, 0 better, ${table.comparison.counts.new} new, ${table.comparison.counts.gone} gone.`);
    const layer = JSON.parse(readFileSync(join(now, 'attack-layer.json'), 'utf8')) as { versions: { layer: string }; techniques: { score?: number }[] };
    expect(layer.versions.layer).toBe('4.5');
    // No suite ran a trigger: every technique of the catalogue is there, none scored.
    expect(layer.techniques.length).toBeGreaterThan(50);
    expect(layer.techniques.every((t) => t.score === undefined)).toBe(true);
  }, 120_000);
});

describe('what lint and the static suite say about the kernel lane\'s own policies', () => {
  const fixtures = join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'kernel-lane');

  it('warns where the CRD default decides syscall, finds no plain sys_execve under syscall: false, and warns of a policy with no hook', async () => {
    const run = await bpfgate(['lint', '--schema', CRD_DIR, '--arch', 'x86_64,arm64', fixtures]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/sys-execve-without-syscall\.yaml:\d+:\d+: warning: spec\.kprobes\[0\]\.call: `syscall` is not set: the CRD defaults it to true, so the agent attaches __x64_sys_execve \/ __arm64_sys_execve/);
    expect(run.stdout).toMatch(/sys-execve-syscall-false\.yaml:\d+:\d+: symbol-missing: spec\.kprobes\[0\]\.call: x86_64: .*has only __x64_sys_execve.*write syscall: true/);
    expect(run.stdout).toMatch(/pod-selector-only\.yaml:\d+:\d+: warning: spec: the policy attaches nothing/);
  });

  it('fails a policy with no hook in the static suite too, with no-hooks', async () => {
    const out = tempOut('static-no-hooks');
    await bpfgate(['run', '--suite', 'static', '--schema', CRD_DIR, '--cells', 'x86_64-6.12', '--policies', join(fixtures, 'pod-selector-only.yaml'), '--out', out]);
    const r = readResults(out).find((x) => x.check === 'portability');
    expect(r).toMatchObject({ subject: 'kernel-lane-pod-selector-only', status: 'fail', reason: 'no-hooks' });
  });
});
