import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError, InputError } from '../../core/errors.js';
import { compileRule } from '../../policy/cel.js';
import { loadCrds } from '../../policy/crd.js';
import { readPolicies } from '../../policy/index.js';
import { parseDocuments } from '../../policy/load.js';
import type { PolicyProblem } from '../../policy/model.js';
import { type SchemaValidator, createValidator, toAjvSchema } from '../../policy/schema.js';
import { CRD_DIR, EXAMPLES, EXTRA } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-policy-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let validator: SchemaValidator;
beforeAll(async () => {
  validator = createValidator(await loadCrds(CRD_DIR));
});

/** Problems of the first document of `text`, validated against the real CRDs. */
function problems(text: string, v: SchemaValidator = validator): PolicyProblem[] {
  const [doc] = parseDocuments('p.yaml', text);
  expect(doc?.yamlProblem).toBeUndefined();
  return v.validate(doc!);
}

const HEAD = 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: demo\n';

describe('validating against the TracingPolicy CRD', () => {
  it('reads both CRDs of the corpus directory, keyed by kind', () => {
    expect([...validator.kinds].sort()).toEqual(['TracingPolicy', 'TracingPolicyNamespaced']);
    expect(validator.source).toBe(CRD_DIR);
    // Every CEL rule of the current CRD is in the evaluated subset.
    expect(validator.rulesNotEvaluated).toEqual([]);
  });

  it('accepts a minimal valid policy', () => {
    expect(problems(`${HEAD}spec:\n  kprobes:\n  - call: tcp_connect\n    syscall: false\n`)).toEqual([]);
  });

  it('reports an unknown field the way kubectl --validate=strict does, at the line of its key', () => {
    const text = `${HEAD}spec:\n  kprobes:\n  - call: tcp_connect\n    bogusField: 1\n`;
    expect(problems(text)).toEqual([
      {
        file: 'p.yaml',
        line: 8,
        column: 5,
        reason: 'schema-invalid',
        path: 'spec.kprobes[0].bogusField',
        schemaPath: '#/properties/spec/properties/kprobes/items/additionalProperties',
        message: 'unknown field "spec.kprobes[0].bogusField"',
      },
    ]);
  });

  it('reports an unknown top-level field too', () => {
    const [p] = problems(`${HEAD}spec: {}\nstatus: {}\n`);
    expect(p).toMatchObject({ line: 6, column: 1, message: 'unknown field "status"' });
  });

  it('names the allowed values of an enum and the value it got', () => {
    const text = `${HEAD}spec:\n  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions:\n      - action: FollowFD\n`;
    const [p, ...rest] = problems(text);
    expect(rest).toEqual([]);
    expect(p).toMatchObject({
      line: 10,
      column: 17,
      path: 'spec.kprobes[0].selectors[0].matchActions[0].action',
      schemaPath: '#/properties/spec/properties/kprobes/items/properties/selectors/items/properties/matchActions/items/properties/action/enum',
    });
    expect(p!.message).toMatch(/^must be equal to one of the allowed values: Post, Sigkill, Override, .*NotifyEnforcer.* \(got "FollowFD"\)$/);
  });

  it('reports a wrong type once, without the enum noise of the same field', () => {
    const text = `${HEAD}spec:\n  kprobes:\n  - call: [a, b]\n    syscall: "yes please"\n`;
    expect(problems(text).map((p) => [p.line, p.path, p.message])).toEqual([
      [7, 'spec.kprobes[0].call', 'must be string (got an array)'],
      [8, 'spec.kprobes[0].syscall', 'must be boolean (got "yes please")'],
    ]);
  });

  it('points a missing required field at the object that should hold it', () => {
    const text = `${HEAD}spec:\n  kprobes:\n  - syscall: true\n    return: false\n`;
    expect(problems(text)).toEqual([
      expect.objectContaining({ line: 7, column: 5, path: 'spec.kprobes[0].call', message: 'must have required property "call"' }),
    ]);
  });

  it('requires metadata.name and checks it is a DNS-1123 subdomain', () => {
    const missing = problems('apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  labels: {a: b}\nspec: {}\n');
    expect(missing).toEqual([expect.objectContaining({ line: 4, path: 'metadata.name', message: 'must have required property "name"' })]);
    const bad = problems('apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: Not_A_Name\nspec: {}\n');
    expect(bad).toEqual([expect.objectContaining({ line: 4, column: 9, path: 'metadata.name' })]);
    expect(bad[0]!.message).toMatch(/^must be a lowercase RFC 1123 subdomain .* \(got "Not_A_Name"\)$/);
  });

  it('rejects an apiVersion other than cilium.io/v1alpha1', () => {
    const text = 'apiVersion: cilium.io/v1\nkind: TracingPolicy\nmetadata:\n  name: demo\nspec: {}\n';
    expect(problems(text)).toEqual([
      expect.objectContaining({ line: 1, column: 13, path: 'apiVersion', schemaPath: '#/properties/apiVersion/const', message: 'must be cilium.io/v1alpha1 (got "cilium.io/v1")' }),
    ]);
  });

  it('evaluates the CRD validation rules (CEL) like the API server', () => {
    const text = `${HEAD}spec:\n  uprobes:\n  - path: /bin/bash\n    symbols: [readline]\n    offsets: [16]\n`;
    expect(problems(text)).toEqual([
      expect.objectContaining({
        line: 7,
        path: 'spec.uprobes[0]',
        schemaPath: '#/properties/spec/properties/uprobes/items/x-kubernetes-validations',
        message: expect.stringMatching(/^uprobe needs at most one of symbols, addrs or offsets defined \(rule: /),
      }),
    ]);
    const returnArg = `${HEAD}spec:\n  kprobes:\n  - call: tcp_connect\n    return: true\n`;
    expect(problems(returnArg).map((p) => p.message)).toEqual([expect.stringMatching(/^ReturnArg not specified with Return=true\./)]);
  });

  it('drops fields set to null before validating, as the API server prunes them', () => {
    // `selectors:` with no value is null: pruned, not "must be array".
    expect(problems(`${HEAD}  creationTimestamp: null\nspec:\n  kprobes:\n  - call: tcp_connect\n    selectors:\n`)).toEqual([]);
  });

  it('validates a TracingPolicyNamespaced document against its own CRD', () => {
    const text = 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicyNamespaced\nmetadata:\n  name: demo\n  namespace: Bad_NS\nspec:\n  kprobes:\n  - call: x\n    nope: 1\n';
    expect(problems(text).map((p) => [p.line, p.path])).toEqual([
      [5, 'metadata.namespace'],
      [9, 'spec.kprobes[0].nope'],
    ]);
  });

  it('accepts all 71 example policies of the corpus', async () => {
    const result = await readPolicies([EXAMPLES], { schema: CRD_DIR });
    const invalid = result.documents.filter((d) => !d.valid);
    expect(invalid.map((d) => `${d.file}: ${d.problems[0]?.message}`)).toEqual([]);
    expect(result.documents.filter((d) => d.valid && d.schemaChecked)).toHaveLength(71);
  });

  it('rejects the book policies that use old actions and operators, at their lines', async () => {
    const result = await readPolicies([EXTRA], { schema: CRD_DIR });
    const book = 'docs/security-observability-with-ebpf/';
    const errorsOf = (tail: string) => result.documents.find((d) => d.file.endsWith(tail))!.problems;
    const fdInstall = errorsOf(`${book}03_chapter/01_installation/elastic_keystore_fd_install.yaml`);
    // Line 27 is "      - action: FollowFD", line 28 "        argFd: 0".
    expect(fdInstall.slice(0, 2).map((p) => [p.line, p.column, p.path, p.schemaPath?.split('/').slice(-2).join('/')])).toEqual([
      [27, 17, 'spec.kprobes[0].selectors[0].matchActions[0].action', 'action/enum'],
      [28, 9, 'spec.kprobes[0].selectors[0].matchActions[0].argFd', 'items/additionalProperties'],
    ]);
    const manifests = errorsOf(`${book}04_chapter/01_cilium_tracing_policy/03_etc_kubernetes_manifests_write.yaml`);
    // Line 32 is '        operator: "Instring"'.
    expect(manifests[0]).toMatchObject({ line: 32, column: 19, path: 'spec.kprobes[0].selectors[0].matchArgs[0].operator', message: expect.stringContaining('(got "Instring")') });
    const privileged = errorsOf(`${book}04_chapter/01_cilium_tracing_policy/01_privileged_pod.yaml`);
    expect(privileged[0]).toMatchObject({ line: 1, path: 'apiVersion', message: 'must be cilium.io/v1alpha1 (got "isovalent.com/v1alpha1")' });
    const c2 = errorsOf(`${book}04_chapter/01_cilium_tracing_policy/04_deny_c2_connection.yaml`);
    expect(c2).toEqual([expect.objectContaining({ reason: 'yaml-invalid', line: 29, column: 6 })]);
    // The official examples and the quickstart are valid; only the book's policies fail.
    const invalidFiles = result.documents.filter((d) => !d.valid).map((d) => d.file.slice(EXTRA.length + 1)).sort();
    expect(invalidFiles).toEqual([
      `${book}03_chapter/01_installation/elastic_keystore_fd_install.yaml`,
      `${book}04_chapter/01_cilium_tracing_policy/01_privileged_pod.yaml`,
      `${book}04_chapter/01_cilium_tracing_policy/03_etc_kubernetes_manifests_write.yaml`,
      `${book}04_chapter/01_cilium_tracing_policy/04_deny_c2_connection.yaml`,
      `${book}04_chapter/01_cilium_tracing_policy/05_deny_write_to_ops_bank_account.yaml`,
      `${book}04_chapter/examples/tracing_policy.yaml`,
    ]);
  });
});

describe('without a CRD schema', () => {
  it('still checks apiVersion, kind and metadata, and lets unknown spec fields through', () => {
    const essentials = createValidator(null);
    expect(essentials.source).toBeNull();
    expect(problems(`${HEAD}spec:\n  anything: goes\n`, essentials)).toEqual([]);
    expect(problems('apiVersion: v1\nkind: TracingPolicy\nmetadata: {}\n', essentials).map((p) => p.path)).toEqual(['apiVersion', 'metadata.name']);
  });
});

describe('converting the OpenAPI schema for ajv', () => {
  it('closes objects the API server prunes, and keeps maps and preserved objects open', () => {
    const out = toAjvSchema(
      {
        type: 'object',
        properties: {
          closed: { type: 'object', properties: { a: { type: 'string' } } },
          empty: { type: 'object' },
          map: { type: 'object', additionalProperties: { type: 'string' } },
          open: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          port: { 'x-kubernetes-int-or-string': true },
          maybe: { type: 'string', nullable: true, format: 'no-such-format' },
          count: { type: 'integer', format: 'int32', description: 'dropped' },
        },
      },
      new Set(['date-time']),
    );
    const p = out.properties as Record<string, Record<string, unknown>>;
    expect(out.additionalProperties).toBe(false);
    expect(p.closed!.additionalProperties).toBe(false);
    expect(p.empty!.additionalProperties).toBe(false);
    expect(p.map!.additionalProperties).toEqual({ type: 'string' });
    expect(p.open!.additionalProperties).toBeUndefined();
    // Kubernetes annotations stay (the shared Ajv knows them); what they mean is spelled in JSON Schema beside them.
    expect(p.port).toEqual({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] });
    expect(p.maybe).toEqual({ type: ['string', 'null'] });
    expect(p.count).toEqual({ type: 'integer' });
  });
});

describe('the CEL subset', () => {
  it('evaluates has(), field selection, negation, and, or', () => {
    const rule = compileRule('!has(self.return) || (!self.return || has(self.returnArg))')!;
    expect(rule({})).toBe(true);
    expect(rule({ return: false })).toBe(true);
    expect(rule({ return: true })).toBe(false);
    expect(rule({ return: true, returnArg: {} })).toBe(true);
  });

  it('refuses to guess at rules outside the subset', () => {
    expect(compileRule('self.size() > 1')).toBeUndefined();
    expect(compileRule('self.a == "b"')).toBeUndefined();
    expect(compileRule('has(self)')).toBeUndefined();
  });
});

describe('schema sources', () => {
  it('reads one CRD file for its kind only', async () => {
    const crds = await loadCrds(join(CRD_DIR, 'cilium.io_tracingpolicies.yaml'));
    expect([...crds.kinds.keys()]).toEqual(['TracingPolicy']);
    expect(crds.kinds.get('TracingPolicy')).toMatchObject({ group: 'cilium.io', version: 'v1alpha1' });
  });

  it('says so when a schema file is not a CRD', async () => {
    const file = join(dir, 'not-a-crd.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n');
    const err = await loadCrds(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toContain('not a CustomResourceDefinition');
  });

  it('treats a schema path that does not exist as an input error', async () => {
    const err = await loadCrds(join(dir, 'missing-crds')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
  });

  describe('from a URL', () => {
    let server: Server;
    let base: string;
    let requests = 0;
    const crdText = readFileSync(join(CRD_DIR, 'cilium.io_tracingpolicies.yaml'));
    const cache = join(dir, 'cache');
    const savedCache = process.env.BPFGATE_CACHE;

    beforeAll(async () => {
      process.env.BPFGATE_CACHE = cache;
      server = createServer((req, res) => {
        requests++;
        if (req.url === '/crd.yaml') res.writeHead(200, { 'content-type': 'text/yaml' }).end(crdText);
        else if (req.url === '/error-page') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>rate limited</html>');
        else res.writeHead(404).end('not found');
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      if (savedCache === undefined) delete process.env.BPFGATE_CACHE;
      else process.env.BPFGATE_CACHE = savedCache;
      await new Promise((done) => server.close(done));
    });

    it('downloads the CRD once and reads it from the cache afterwards', async () => {
      const first = await loadCrds(`${base}/crd.yaml`);
      expect([...first.kinds.keys()]).toEqual(['TracingPolicy']);
      expect(first.source).toBe(`${base}/crd.yaml`);
      const second = await loadCrds(`${base}/crd.yaml`);
      expect(second.kinds.get('TracingPolicy')!.file).toBe(first.kinds.get('TracingPolicy')!.file);
      expect(requests).toBe(1);
      expect(readdirSync(join(cache, 'schemas'))).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.yaml$/)]);
    });

    it('reports a failed download as an infrastructure error', async () => {
      const err = await loadCrds(`${base}/gone.yaml`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfraError);
      expect((err as InfraError).code).toBe('infra-download');
      expect((err as InfraError).message).toContain('HTTP 404');
    });

    it('does not keep a downloaded page that holds no CRD', async () => {
      const before = readdirSync(join(cache, 'schemas')).length;
      const err = await loadCrds(`${base}/error-page`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(readdirSync(join(cache, 'schemas'))).toHaveLength(before);
    });
  });
});
