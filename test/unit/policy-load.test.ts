import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../core/errors.js';
import { readPolicies } from '../../policy/index.js';
import { collectPolicyFiles, findPolicyFiles, formatPath, loadDocuments, parseDocuments } from '../../policy/load.js';
import { EXAMPLES, EXTRA } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-policy-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const policy = (name: string, call = 'tcp_connect') =>
  `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n  kprobes:\n  - call: ${call}\n`;

describe('reading policy files', () => {
  it('gives each document of a multi-document file the line of its first key', () => {
    const text = [
      '# leading comment',
      '---',
      policy('first').trimEnd(), // lines 3-9
      '---',
      '# only a comment: an empty document',
      '---',
      '', // blank line before the third document
      policy('third').trimEnd(), // starts at line 14
    ].join('\n');
    const docs = parseDocuments('multi.yaml', text);
    expect(docs.map((d) => [d.name, d.line, d.column, d.docIndex])).toEqual([
      ['first', 3, 1, 0],
      ['third', 14, 1, 2],
    ]);
    // Positions inside each document are file lines too.
    expect(docs[1]!.locate(['spec', 'kprobes', 0, 'call'])).toEqual({ line: 20, column: 11 });
    expect(docs[1]!.locate(['spec', 'kprobes'], 'key')).toEqual({ line: 19, column: 3 });
  });

  it('reports a file that is not YAML at the line and column of the error, without throwing', () => {
    const text = 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: x\nspec:\n  kprobes:\n  - call: a\n    args:\n    - index: 0\n   bad: 1\n';
    const [doc] = parseDocuments('bad.yaml', text);
    expect(doc?.yamlProblem).toMatchObject({ file: 'bad.yaml', reason: 'yaml-invalid', line: 10, column: 4, path: '' });
    expect(doc?.value).toBeUndefined();
    // The kind and name are still read from the broken document, for the report.
    expect([doc?.kind, doc?.name]).toEqual(['TracingPolicy', 'x']);
  });

  it('points at the misindented key of the book policy that is not valid YAML', async () => {
    const file = join(EXTRA, 'docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/04_deny_c2_connection.yaml');
    const [doc] = await loadDocuments([file]);
    // Line 29 is "     matchArgs:", indented one column less than the list it belongs to.
    expect(doc?.yamlProblem).toMatchObject({ line: 29, column: 6, reason: 'yaml-invalid' });
    expect(doc?.line).toBe(2); // the apiVersion line, after the leading comment
  });

  it('reads YAML with the 1.1 rules of Kubernetes: yes is true, 0777 is octal, times stay strings', () => {
    const [doc] = parseDocuments('y.yaml', 'a: yes\nb: 0777\nc: 2001-12-14\nd: 12:30\n');
    expect(doc?.value).toEqual({ a: true, b: 511, c: '2001-12-14', d: '12:30' });
  });

  it('walks directories recursively in sorted order, taking .yaml and .yml files only', async () => {
    const root = join(dir, 'tree');
    mkdirSync(join(root, 'b', 'nested'), { recursive: true });
    mkdirSync(join(root, 'a'), { recursive: true });
    writeFileSync(join(root, 'b', 'nested', 'z.yml'), policy('z'));
    writeFileSync(join(root, 'b', 'y.yaml'), policy('y'));
    writeFileSync(join(root, 'a', 'x.YAML'), policy('x'));
    writeFileSync(join(root, 'a', 'notes.txt'), 'not a policy');
    symlinkSync(root, join(root, 'b', 'loop')); // a link cycle must not loop forever
    const files = await collectPolicyFiles([root]);
    expect(files.map((f) => f.slice(root.length + 1))).toEqual(['a/x.YAML', 'b/nested/z.yml', 'b/y.yaml']);
  });

  it('remembers the --policies root of each file and its path under it, without `..`', async () => {
    const root = join(dir, 'tree');
    const found = await findPolicyFiles([root, join(root, 'b', 'y.yaml')]);
    expect(found.map((f) => [f.root, f.relPath])).toEqual([
      [root, 'a/x.YAML'],
      [root, 'b/nested/z.yml'],
      [root, 'b/y.yaml'], // named twice: the first root that names it wins
    ]);
    const direct = await findPolicyFiles([join(root, 'b', 'nested', 'z.yml')]);
    expect(direct.map((f) => [f.root, f.relPath])).toEqual([[join(root, 'b', 'nested'), 'z.yml']]);
    // Through the link back to the tree's top, a path stays under its root: never `..`.
    const docs = await loadDocuments([join(root, 'b')]);
    expect(docs.map((d) => [d.root, d.relPath])).toEqual([
      [join(root, 'b'), 'loop/a/x.YAML'],
      [join(root, 'b'), 'nested/z.yml'],
      [join(root, 'b'), 'y.yaml'],
    ]);
  });

  it('treats a path that does not exist as an input error naming it', async () => {
    const missing = join(dir, 'no-such-dir');
    const err = await loadDocuments([missing]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('policy-path-missing');
    expect((err as InputError).file).toBe(missing);
  });

  it('formats JSON paths the way kubectl names fields', () => {
    expect(formatPath(['spec', 'kprobes', 0, 'selectors', 1, 'matchActions', 0, 'action'])).toBe(
      'spec.kprobes[0].selectors[1].matchActions[0].action',
    );
    expect(formatPath([])).toBe('');
  });
});

describe('sorting documents into policies and others', () => {
  it('returns TracingPolicy and TracingPolicyNamespaced documents as policies and ignores other kinds', async () => {
    const file = join(dir, 'mixed.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n',
        policy('cluster-wide'),
        policy('in-ns').replace('kind: TracingPolicy', 'kind: TracingPolicyNamespaced').replace('  name: in-ns', '  name: in-ns\n  namespace: team-a'),
        '- just\n- a list\n',
      ].join('---\n'),
    );
    const result = await readPolicies([file]);
    expect(result.policies.map((p) => [p.kind, p.name, p.namespace, p.source.line, p.docIndex])).toEqual([
      ['TracingPolicy', 'cluster-wide', undefined, 6, 1],
      ['TracingPolicyNamespaced', 'in-ns', 'team-a', 14, 2],
    ]);
    expect(result.ignored.map((i) => [i.kind, i.line])).toEqual([
      ['ConfigMap', 1],
      [null, 23],
    ]);
    expect(result.schemaUsed).toBeNull();
  });

  it('reads all 71 example policies of the corpus, one per file, with their names', async () => {
    const result = await readPolicies([EXAMPLES]);
    expect(result.policies).toHaveLength(71);
    expect(result.ignored).toHaveLength(0);
    expect(new Set(result.policies.map((p) => p.source.file)).size).toBe(71);
    expect(result.policies.every((p) => p.source.line >= 1 && p.name.length > 0)).toBe(true);
    // Stable order: sorted by path.
    const files = result.policies.map((p) => p.source.file);
    expect([...files].sort()).toEqual(files);
  });

  it('ignores the Pod that shares a file with a policy in the extra corpus, with its line', async () => {
    const result = await readPolicies([join(EXTRA, 'examples/other/file-block-kubectl-exec-access.yaml')]);
    expect(result.ignored).toEqual([expect.objectContaining({ kind: 'Pod', line: 3, docIndex: 0 })]);
    expect(result.policies).toHaveLength(1);
    expect(result.policies[0]!.docIndex).toBe(1);
  });
});
