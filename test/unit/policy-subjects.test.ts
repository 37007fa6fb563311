/**
 * Subjects that do not depend on where bpfgate runs: a policy's name, qualified by its
 * path under its --policies root when names clash; never `..`, never the working directory.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baselineFrom } from '../../cli/commands/baseline.js';
import { evaluateGate, parseBaseline } from '../../core/baseline.js';
import type { CheckResult } from '../../core/check.js';
import { readPolicies } from '../../policy/index.js';
import { fileSubject, policySubjects } from '../../policy/subjects.js';
import { staticSuite } from '../../suites/static.js';
import { CORPUS, PROJECT_ROOT } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-subjects-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const policy = (name: string) => `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n  kprobes:\n  - call: tcp_connect\n`;

/** Read `paths` with `cwd` as the working directory, as a user starting bpfgate there would. */
async function subjectsFrom(cwd: string, paths: string[]): Promise<string[]> {
  const before = process.cwd();
  process.chdir(cwd);
  try {
    const { documents, policies } = await readPolicies(paths);
    const subjects = policySubjects(policies);
    return [
      ...policies.map((p) => subjects.get(p)!),
      ...documents.filter((d) => !d.policy).flatMap((d) => d.problems.map(fileSubject)),
    ];
  } finally {
    process.chdir(before);
  }
}

describe('policy subjects', () => {
  it('are the same from two working directories, and for a relative and an absolute --policies', async () => {
    const fromProject = await subjectsFrom(PROJECT_ROOT, [relative(PROJECT_ROOT, CORPUS)]);
    const fromCorpus = await subjectsFrom(CORPUS, ['.']);
    const absolute = await subjectsFrom(dir, [CORPUS]);
    expect(fromCorpus).toEqual(fromProject);
    expect(absolute).toEqual(fromProject);
    expect(relative(PROJECT_ROOT, CORPUS).startsWith('..')).toBe(true); // the case that used to leak `../` into subjects
    expect(fromProject.filter((s) => s.includes('..') || s.startsWith('/'))).toEqual([]);
    // The corpus has clashing names (four examples are called `syscalls`) and a file that is not YAML.
    expect(fromProject).toContain('syscalls@tetragon-examples/dev_queue_xmit.yaml');
    expect(fromProject).toContain('tetragon-extra/docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/04_deny_c2_connection.yaml');
    expect(new Set(fromProject).size).toBe(fromProject.length);
  });

  it('qualify a clashing name by its path under the root, with #docIndex only when one file holds both', async () => {
    const root = join(dir, 'clash');
    mkdirSync(join(root, 'a'), { recursive: true });
    mkdirSync(join(root, 'b'), { recursive: true });
    writeFileSync(join(root, 'a', 'p.yaml'), policy('dup'));
    writeFileSync(join(root, 'b', 'p.yaml'), policy('dup'));
    writeFileSync(join(root, 'multi.yaml'), `${policy('twin')}---\n${policy('twin')}---\n${policy('alone')}`);
    expect(await subjectsFrom(dir, [root])).toEqual(['dup@a/p.yaml', 'dup@b/p.yaml', 'twin@multi.yaml', 'twin@multi.yaml#1', 'alone']);
  });

  it('take a file given directly as relative to its own directory, and tell apart two roots by their names', async () => {
    const root = join(dir, 'clash');
    expect(await subjectsFrom(dir, [join(root, 'a', 'p.yaml'), join(root, 'multi.yaml')])).toEqual(['dup', 'twin@multi.yaml', 'twin@multi.yaml#1', 'alone']);
    // Both files are `p.yaml` under their own directory: the directory's name keeps them apart.
    expect((await subjectsFrom(root, ['a/p.yaml', join(root, 'b', 'p.yaml')])).sort()).toEqual(['dup@a/p.yaml', 'dup@b/p.yaml']);
    const [doc] = (await readPolicies([join(root, 'a', 'p.yaml')])).documents;
    expect(doc?.policy?.origin).toEqual({ root: join(root, 'a'), relPath: 'p.yaml' });
  });

  it('name a file that is not YAML by its path under its root in the static suite', async () => {
    const root = join(dir, 'broken');
    mkdirSync(join(root, 'nested'), { recursive: true });
    writeFileSync(join(root, 'nested', 'bad.yaml'), 'kind: TracingPolicy\nspec:\n  - a\n   b: 1\n');
    const { documents } = await readPolicies([root]);
    const fileProblems = documents.flatMap((d) => (d.policy ? [] : d.problems));
    const ctx = { fileProblems, policies: [], policyProblems: new Map(), subjects: new Map() };
    const checks = staticSuite.run(ctx as unknown as Parameters<typeof staticSuite.run>[0]);
    expect(checks.map((c) => [c.subject, c.check, c.reason])).toEqual([['nested/bad.yaml', 'yaml', 'yaml-invalid']]);
  });

  it('let a baseline written from one directory gate results read from another', async () => {
    const failing = (subjects: string[]): CheckResult[] =>
      subjects.map((subject) => ({ cell: 'x86_64-6.12', lane: 'static', suite: 'static', subject, check: 'schema', status: 'fail', reason: 'schema-invalid', evidence: {}, durationMs: 0 }));
    const written = baselineFrom(failing(await subjectsFrom(PROJECT_ROOT, [relative(PROJECT_ROOT, CORPUS)])));
    const { stringify } = await import('yaml');
    const baseline = parseBaseline(stringify(written), 'baseline.yaml');
    const gate = evaluateGate(failing(await subjectsFrom(CORPUS, ['.'])), baseline);
    expect(gate.unexpected).toEqual([]);
    expect(gate.expected.length).toBe(written.length);
  });
});
