/**
 * The one JSON Schema validator of bpfgate: a single Ajv instance for the schemas
 * that ship with the tool (`*.schema.json` beside the module that reads the file
 * kind) and for the TracingPolicy CRD's openAPIV3Schema, once converted
 * (policy/schema.ts).
 *
 * Options, chosen so that one set serves both:
 * - strict mode stays on, all of it: a keyword ajv does not know is an error when a schema
 *   is compiled, so a typo in a shipped schema (or in a CRD) fails instead of being ignored.
 *   The Kubernetes and OpenAPI keywords a CRD schema may hold (`x-kubernetes-*`,
 *   `example`, `externalDocs`) are registered as annotations instead (KUBERNETES_KEYWORDS);
 *   `nullable` is ajv's own. `x-kubernetes-validations` (CEL) is a validating keyword
 *   that policy/ registers with `defineKeyword`, since only it can evaluate the rules.
 *   strictTypes (a type-specific keyword needs its type stated) holds for CRDs too: the
 *   conversion (policy/schema.ts scopeToTypes) states it where a structural schema may
 *   leave it out, as an int-or-string with a `pattern`.
 * - allowUnionTypes: `nullable` becomes `type: [T, "null"]` in a converted CRD, and a
 *   results line's reason is a string or null.
 * - strictRequired off: the matrix schema's `oneOf: [{required: [debian]}, {required: [file]}]`
 *   names properties its parent defines, which strictRequired would refuse.
 * - allErrors and verbose: the loaders report the first problem in document order (not
 *   in schema order) and say what value they got, so they need every error with its data.
 * - ajv-formats: CRDs name formats; the converter keeps the ones ajv knows (`knownFormats`).
 *
 * Invariant: a schema is compiled once; validators are cached by file path or by a
 * caller's key (a CRD is keyed by the hash of its converted schema).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv, type AnySchemaObject, type KeywordDefinition, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { assetPath } from './assets.js';

// ajv-formats is CommonJS: under NodeNext its function is the module's `default`.
const addFormats = addFormatsModule.default;

/** Annotation keywords of Kubernetes structural schemas and OpenAPI v3 that JSON Schema draft-07 does not define. */
export const KUBERNETES_KEYWORDS = [
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'example',
  'externalDocs',
] as const;

const ajv = new Ajv({
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
  allErrors: true,
  verbose: true,
  useDefaults: false,
  logger: false,
});
addFormats(ajv);
ajv.addVocabulary([...KUBERNETES_KEYWORDS]);

/** The schemas that ship with bpfgate, one per file kind. */
export const SCHEMA_FILES = {
  matrix: assetPath('matrix', 'schema', 'matrix.schema.json'),
  trigger: assetPath('suites', 'triggers', 'schema', 'trigger.schema.json'),
  config: assetPath('cli', 'schema', 'config.schema.json'),
  baseline: assetPath('core', 'schema', 'baseline.schema.json'),
  results: assetPath('core', 'schema', 'results.schema.json'),
  run: assetPath('core', 'schema', 'run.schema.json'),
  lock: assetPath('runners', 'qemu', 'schema', 'lock.schema.json'),
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

const byKey = new Map<string, ValidateFunction>();

/** The validator of a shipped schema, compiled on first use. */
export function schemaValidator<T>(name: SchemaName): ValidateFunction<T> {
  return compileSchemaFile<T>(SCHEMA_FILES[name]);
}

/** The validator of a JSON Schema file, compiled once per path. */
export function compileSchemaFile<T>(file: string): ValidateFunction<T> {
  const key = `file:${file}`;
  let validate = byKey.get(key);
  if (!validate) {
    const schema = JSON.parse(readFileSync(file, 'utf8')) as AnySchemaObject;
    validate = ajv.compile(schema);
    byKey.set(key, validate);
  }
  return validate as ValidateFunction<T>;
}

/**
 * The validator of a schema built in code (a converted CRD), compiled once per content:
 * the same CRD read twice, or by two validators, is compiled once.
 */
export function compileSchema<T>(schema: AnySchemaObject): ValidateFunction<T> {
  const key = `sha256:${createHash('sha256').update(JSON.stringify(schema)).digest('hex')}`;
  let validate = byKey.get(key);
  if (!validate) {
    validate = ajv.compile(schema);
    byKey.set(key, validate);
  }
  return validate as ValidateFunction<T>;
}

/** Add a validating keyword to the shared instance; a second definition of the same keyword is ignored. */
export function defineKeyword(definition: KeywordDefinition & { keyword: string }): void {
  if (!ajv.getKeyword(definition.keyword)) ajv.addKeyword(definition);
}

/** The formats the shared instance validates (ajv-formats' full set). */
export function knownFormats(): ReadonlySet<string> {
  return new Set(Object.keys(ajv.formats));
}

/** What the shared instance has compiled: shipped schema files by path, schemas built in code by `sha256:` key. */
export function compiledSchemas(): string[] {
  return [...byKey.keys()].map((k) => (k.startsWith('file:') ? k.slice('file:'.length) : k));
}
