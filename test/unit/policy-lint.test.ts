import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type LintOptions, type LintReport, lintCommand } from '../../cli/commands/lint.js';
import type { Arch } from '../../matrix/cell.js';
import { CRD_DIR, EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-lint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs lint and returns its exit code, what it printed on stdout, and its errors (stderr). */
async function lint(opts: Omit<LintOptions, 'out' | 'err' | 'format'> & { format?: 'text' | 'json' }): Promise<{ code: number; output: string; errors: string }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const errors: string[] = [];
  const code = await lintCommand({ format: 'text', ...opts, out, err: { write: (t: string) => errors.push(t) } });
  return { code, output: Buffer.concat(chunks).toString('utf8'), errors: errors.join('') };
}

const BOOK = join(EXTRA, 'docs/security-observability-with-ebpf');
/** Policies written for the lanes' disagreements with a real agent (issue 12). */
const LANE_FIDELITY = join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'lane-fidelity');

describe('bpfgate lint', () => {
  it('passes the 71 example policies against the CRD directory', async () => {
    const { code, output } = await lint({ paths: [EXAMPLES], schema: CRD_DIR });
    expect(code).toBe(0);
    expect(output.trim().split('\n').at(-1)).toBe(`lint: 71 valid, 0 invalid of 71 policies; 0 not valid YAML; 0 ignored documents; schema: ${CRD_DIR}`);
  });

  it('fails the extra corpus and names every invalid file with the line of each error', async () => {
    const { code, output } = await lint({ paths: [EXTRA], schema: CRD_DIR });
    expect(code).toBe(1);
    const lines = output.trim().split('\n');
    expect(lines).toContain(`${BOOK}/04_chapter/01_cilium_tracing_policy/04_deny_c2_connection.yaml:29:6: yaml-invalid: Sequence item without - indicator (MISSING_CHAR)`);
    expect(lines).toContain(
      `${BOOK}/03_chapter/01_installation/elastic_keystore_fd_install.yaml:28:9: schema-invalid: spec.kprobes[0].selectors[0].matchActions[0].argFd: ` +
        'unknown field "spec.kprobes[0].selectors[0].matchActions[0].argFd" ' +
        '[schema #/properties/spec/properties/kprobes/items/properties/selectors/items/properties/matchActions/items/additionalProperties]',
    );
    const instring = lines.find((l) => l.startsWith(`${BOOK}/04_chapter/01_cilium_tracing_policy/05_deny_write_to_ops_bank_account.yaml:32:19: schema-invalid: spec.kprobes[0].selectors[0].matchArgs[0].operator: must be equal to one of the allowed values: Equal, NotEqual,`));
    expect(instring).toMatch(/\(got "Instring"\) \[schema #\/properties\/spec\/.*\/operator\/enum\]$/);
    const invalidFiles = new Set(lines.filter((l) => /: (schema|yaml)-invalid: /.test(l)).map((l) => l.split(':')[0]));
    expect(invalidFiles.size).toBe(6);
    expect(lines).toContain(`${join(EXTRA, 'examples/other/file-block-kubectl-exec-access.yaml')}:3:1: ignored: kind Pod is not a TracingPolicy`);
    expect(lines.at(-1)).toBe(`lint: 13 valid, 5 invalid of 18 policies; 1 not valid YAML; 1 ignored document; schema: ${CRD_DIR}`);
  });

  it('reports __x64_sys_ policies as symbol-missing on arm64 with --arch, without failing on findings', async () => {
    const valid = join(dir, 'x64-only.yaml');
    writeFileSync(valid, 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: x64-only\nspec:\n  kprobes:\n  - call: "__x64_sys_write"\n    syscall: true\n');
    const { code, output } = await lint({ paths: [valid], schema: CRD_DIR, arch: ['x86_64', 'arm64'] });
    expect(code).toBe(0);
    expect(output).toContain(`${valid}:7:11: symbol-missing: spec.kprobes[0].call: arm64: __x64_sys_write is an x86_64 symbol; there is no such symbol on arm64\n`);
    expect(output).toContain('1 portability finding (x86_64, arm64)');
    const onlyX86 = await lint({ paths: [valid], schema: CRD_DIR, arch: ['x86_64'] });
    expect(onlyX86.output).not.toContain('symbol-missing');
  });

  it('warns, without failing, at the namespace of a cluster-scoped policy: kubectl drops it, the agent refuses it', async () => {
    const file = join(LANE_FIDELITY, 'cluster-scoped-with-namespace.yaml');
    const { code, output } = await lint({ paths: [file], schema: CRD_DIR });
    expect(code).toBe(0);
    expect(output).toContain(`${file}:8:3: warning: metadata.namespace: cluster-scoped TracingPolicy: kubectl drops metadata.namespace; the agent's API refuses it\n`);
    expect(output.trim().split('\n').at(-1)).toBe(`lint: 1 valid, 0 invalid of 1 policy; 0 not valid YAML; 0 ignored documents; 1 warning; schema: ${CRD_DIR}`);
    // A namespaced policy's namespace is its own: no warning.
    const own = join(dir, 'namespaced.yaml');
    writeFileSync(own, readFileSync(file, 'utf8').replace('kind: TracingPolicy', 'kind: TracingPolicyNamespaced'));
    const namespaced = await lint({ paths: [own], schema: CRD_DIR, format: 'json' });
    expect((JSON.parse(namespaced.output) as LintReport).documents[0]).toMatchObject({ namespace: 'kube-system', valid: true, warnings: [] });
  });

  it('writes one JSON object with documents, ignored documents, schema and summary', async () => {
    const { code, output } = await lint({ paths: [join(BOOK, '04_chapter'), join(EXTRA, 'examples/other')], schema: CRD_DIR, format: 'json', arch: ['arm64'] as Arch[] });
    expect(code).toBe(1);
    const report = JSON.parse(output) as LintReport;
    expect(report.schema).toEqual({ used: true, source: CRD_DIR, kinds: ['TracingPolicy', 'TracingPolicyNamespaced'], notes: [] });
    expect(report.ignoredDocuments).toEqual([expect.objectContaining({ kind: 'Pod', line: 3 })]);
    expect(report.summary).toEqual({ policies: 6, valid: 2, invalid: 5, yamlInvalid: 1, ignored: 1, findings: 7, warnings: 0 });
    const c2 = report.documents.find((d) => d.file.endsWith('04_deny_c2_connection.yaml'))!;
    expect(c2).toMatchObject({ kind: 'TracingPolicy', name: 'deny-c2-server-connection', valid: false, line: 2 });
    expect(c2.errors).toEqual([{ reason: 'yaml-invalid', line: 29, column: 6, path: '', schemaPath: null, message: 'Sequence item without - indicator (MISSING_CHAR)' }]);
    const nsenter = report.documents.find((d) => d.file.endsWith('02_nsenter.yaml'))!;
    expect(nsenter).toMatchObject({ valid: true, errors: [] });
    expect(nsenter.findings).toEqual([{ arch: 'arm64', reason: 'symbol-missing', message: expect.any(String), hook: 'kprobe:__x64_sys_setns', path: 'spec.kprobes[0].call', line: 8, column: 11 }]);
    expect(nsenter.hooks[0]).toMatchObject({ id: 'kprobe:__x64_sys_setns', symbols: { x86_64: '__x64_sys_setns' } });
    const privileged = report.documents.find((d) => d.file.endsWith('01_privileged_pod.yaml'))!;
    expect(privileged.errors[0]).toEqual({ reason: 'schema-invalid', line: 1, column: 13, path: 'apiVersion', schemaPath: '#/properties/apiVersion/const', message: 'must be cilium.io/v1alpha1 (got "isovalent.com/v1alpha1")' });
  });

  it('says plainly that the schema check did not run without --schema, and still checks the rest', async () => {
    const file = join(dir, 'no-name.yaml');
    writeFileSync(file, 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {}\nspec:\n  kprobes:\n  - call: tcp_connect\n    notAField: 1\n');
    const { code, output } = await lint({ paths: [file] });
    expect(code).toBe(1);
    expect(output).toMatch(/^note: the schema check did not run \(no --schema\).*--schema \.\.\/shared\/corpus\/crd.*URL of the CRD YAML at a pinned Tetragon release/m);
    expect(output).toContain(`${file}:3:11: schema-invalid: metadata.name: must have required property "name"`);
    expect(output).not.toContain('notAField');
    expect(output.trim().split('\n').at(-1)).toMatch(/schema: not checked$/);
  });

  it('exits 2 for a path that does not exist, a bad arch, or no policy at all', async () => {
    const missing = await lint({ paths: [join(dir, 'nope')] });
    expect(missing.code).toBe(2);
    expect(missing.output).toBe('');
    expect(missing.errors).toBe(`bpfgate: ${join(dir, 'nope')}: no such file or directory [policy-path-missing]\n`);
    expect((await lint({ paths: [EXAMPLES], arch: ['riscv64' as Arch] })).code).toBe(2);
    const onlyPod = join(dir, 'pod.yaml');
    writeFileSync(onlyPod, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n');
    const none = await lint({ paths: [onlyPod], format: 'json' });
    expect(none.code).toBe(2);
    expect(JSON.parse(none.output)).toEqual({ error: { code: 'policy-none-found', message: expect.stringContaining('1 document(s) of other kinds ignored') } });
    expect(none.errors).toMatch(/^bpfgate: lint: no TracingPolicy .* \[policy-none-found\]\n$/);
  });

  it('says which kinds a single CRD file does not cover, and checks their essentials only', async () => {
    const namespaced = join(EXTRA, 'examples/quickstart/file_monitoring_enforce.yaml');
    const { code, output } = await lint({ paths: [namespaced], schema: join(CRD_DIR, 'cilium.io_tracingpolicies.yaml'), format: 'json' });
    expect(code).toBe(0);
    const report = JSON.parse(output) as LintReport;
    expect(report.schema.kinds).toEqual(['TracingPolicy']);
    expect(report.schema.notes).toEqual([expect.stringContaining('has no CRD for TracingPolicyNamespaced')]);
    expect(report.documents).toEqual([expect.objectContaining({ kind: 'TracingPolicyNamespaced', valid: true, schemaChecked: false })]);
  });

  it('exits 2 when the schema source is not a CRD', async () => {
    const notCrd = join(dir, 'crd.yaml');
    writeFileSync(notCrd, readFileSync(join(EXAMPLES, 'write.yaml')));
    const { code, errors } = await lint({ paths: [EXAMPLES], schema: notCrd });
    expect(code).toBe(2);
    expect(errors).toBe(`bpfgate: ${notCrd}:1:1: not a CustomResourceDefinition (kind TracingPolicy) [schema-source-invalid]\n`);
  });
});
