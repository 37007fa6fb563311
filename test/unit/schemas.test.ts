/**
 * One Ajv (core/schemas.ts): every schema that ships is a file, compiled by the shared
 * strict instance, and every loader, the CRD validator included, validates through it.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.js';
import { parseBaseline } from '../../core/baseline.js';
import { InputError } from '../../core/errors.js';
import { parseResultLine } from '../../core/results-store.js';
import { SCHEMA_FILES, type SchemaName, compileSchema, compiledSchemas, schemaValidator } from '../../core/schemas.js';
import { MATRIX_SCHEMA_FILE } from '../../matrix/assets.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadCrds } from '../../policy/crd.js';
import { parseDocuments } from '../../policy/load.js';
import { createValidator, toAjvSchema } from '../../policy/schema.js';
import { parseLockFile } from '../../runners/qemu/lockfile.js';
import { loadTriggerCatalogue, TRIGGER_SCHEMA_FILE } from '../../suites/triggers/load.js';
import { CRD_DIR, PROJECT_ROOT } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-schemas-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SOURCE_DIRS = ['cli', 'core', 'matrix', 'policy', 'runners', 'suites', 'reports', 'bench'];

function filesUnder(root: string, match: (name: string) => boolean): string[] {
  return readdirSync(root, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && match(e.name))
    .map((e) => join(e.parentPath, e.name));
}

describe('the schemas that ship with bpfgate', () => {
  it('are every *.schema.json of the sources, each registered, compiled strictly, and listed in package.json files', () => {
    const onDisk = SOURCE_DIRS.flatMap((d) => filesUnder(join(PROJECT_ROOT, d), (n) => n.endsWith('.schema.json'))).sort();
    expect(Object.values(SCHEMA_FILES).sort()).toEqual(onDisk);
    const shipped = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
    for (const [name, file] of Object.entries(SCHEMA_FILES)) {
      expect(() => schemaValidator(name as SchemaName), name).not.toThrow();
      const rel = relative(PROJECT_ROOT, file);
      expect(shipped.some((entry) => rel === entry || rel.startsWith(`${entry}/`)), `${rel} ships`).toBe(true);
    }
    // The modules that name their schema file name the registered one.
    expect([MATRIX_SCHEMA_FILE, TRIGGER_SCHEMA_FILE]).toEqual([SCHEMA_FILES.matrix, SCHEMA_FILES.trigger]);
  });

  it('are compiled by one strict instance: a misspelt keyword is refused, the Kubernetes keywords are known', () => {
    expect(() => compileSchema({ type: 'object', properties: { a: { type: 'string', maxlength: 3 } } })).toThrow(/unknown keyword: "maxlength"/);
    const list = compileSchema<string[]>({ type: 'array', 'x-kubernetes-list-type': 'set', example: ['a'], items: { type: 'string' } });
    expect([list(['a']), list([1])]).toEqual([true, false]);
  });

  it('is the instance every loader validates with, the CRD validator included', async () => {
    // A loader that built its own Ajv would leave its schema out of the shared instance's cache.
    await loadDefaultMatrix();
    await loadTriggerCatalogue();
    parseBaseline('- { cell: "*", subject: p, reason: lsm-inactive }\n', 'b.yaml');
    parseLockFile('{ "lockfileVersion": 1, "kernels": [] }', 'l.json');
    parseResultLine(JSON.stringify({ cell: 'c', lane: 'static', suite: 's', subject: 'p', check: 'schema', status: 'pass', reason: null, evidence: {}, durationMs: 0 }), 'r.jsonl', 1);
    const config = join(dir, 'bpfgate.config.yaml');
    writeFileSync(config, 'jobs: 2\n');
    await loadConfig(config);
    const files: string[] = [SCHEMA_FILES.matrix, SCHEMA_FILES.trigger, SCHEMA_FILES.baseline, SCHEMA_FILES.lock, SCHEMA_FILES.results, SCHEMA_FILES.config];
    expect(compiledSchemas()).toEqual(expect.arrayContaining(files));

    const crdKeys = () => compiledSchemas().filter((k) => k.startsWith('sha256:'));
    const before = crdKeys().length;
    const [doc] = parseDocuments('p.yaml', 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec: {}\n');
    expect(createValidator(await loadCrds(CRD_DIR)).validate(doc!)).toEqual([]);
    expect(crdKeys()).toHaveLength(before + 1);
    // The same CRD read again is not compiled again.
    expect(createValidator(await loadCrds(CRD_DIR)).validate(doc!)).toEqual([]);
    expect(crdKeys()).toHaveLength(before + 1);
  });

  it('is the only Ajv in the sources', () => {
    const sources = SOURCE_DIRS.flatMap((d) => filesUnder(join(PROJECT_ROOT, d), (n) => n.endsWith('.ts')));
    const constructing = sources.filter((f) => /new Ajv\b|from 'ajv-formats'|\bnew AjvModule/.test(readFileSync(f, 'utf8')));
    expect(constructing.map((f) => relative(PROJECT_ROOT, f))).toEqual(['core/schemas.ts']);
  });
});

describe('a CRD schema on the shared instance', () => {
  it('spells OpenAPI exclusive bounds as JSON Schema', () => {
    const out = toAjvSchema({ type: 'integer', minimum: 0, exclusiveMinimum: true, maximum: 10 }, new Set());
    expect(out).toEqual({ type: 'integer', exclusiveMinimum: 0, maximum: 10 });
    const validate = compileSchema<number>(out);
    expect([validate(0), validate(1), validate(10), validate(11)]).toEqual([false, true, true, false]);
  });

  it('keeps strict types for an int-or-string with a pattern and a bound: each keyword applies to its own type', async () => {
    const crdDir = join(dir, 'int-or-string');
    mkdirSync(crdDir, { recursive: true });
    writeFileSync(
      join(crdDir, 'crd.yaml'),
      [
        'apiVersion: apiextensions.k8s.io/v1',
        'kind: CustomResourceDefinition',
        'metadata: { name: tracingpolicies.cilium.io }',
        'spec:',
        '  group: cilium.io',
        '  names: { kind: TracingPolicy, plural: tracingpolicies }',
        '  scope: Cluster',
        '  versions:',
        '  - name: v1alpha1',
        '    served: true',
        '    storage: true',
        '    schema:',
        '      openAPIV3Schema:',
        '        type: object',
        '        properties:',
        '          spec:',
        '            type: object',
        '            properties:',
        '              share:',
        '                x-kubernetes-int-or-string: true',
        '                anyOf: [{ type: integer }, { type: string }]',
        '                pattern: "^[0-9]+%$"',
        '                maximum: 100',
        '',
      ].join('\n'),
    );
    const validator = createValidator(await loadCrds(crdDir));
    const check = (share: string) =>
      validator.validate(parseDocuments('p.yaml', `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  share: ${share}\n`)[0]!).map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
    expect(check('"50%"')).toEqual([]);
    expect(check('50')).toEqual([]);
    expect(check('"half"')).toEqual(['6:10 spec.share: must match pattern "^[0-9]+%$" (got "half")']);
    expect(check('150')).toEqual(['6:10 spec.share: must be <= 100 (got 150)']);
  });

  it('refuses a CRD whose schema holds a keyword neither JSON Schema nor Kubernetes defines, naming the CRD file', async () => {
    const crdDir = join(dir, 'crd');
    mkdirSync(crdDir, { recursive: true });
    const original = readFileSync(join(CRD_DIR, 'cilium.io_tracingpolicies.yaml'), 'utf8');
    const file = join(crdDir, 'tp.yaml');
    // `minLenght` is a typo the API server would refuse in a CRD; bpfgate must not silently skip it.
    const typo = original.replace('            description: Tracing policy specification.\n', '$&            minLenght: 1\n');
    expect(typo).not.toBe(original);
    writeFileSync(file, typo);
    const validator = createValidator(await loadCrds(crdDir));
    const [doc] = parseDocuments('p.yaml', 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec: {}\n');
    let err: unknown;
    try {
      validator.validate(doc!);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('schema-source-invalid');
    expect((err as InputError).message).toMatch(new RegExp(`^${file}: the openAPIV3Schema of TracingPolicy cannot be used: .*minLenght`));
  });
});
