/**
 * Schema validation of policy documents, as the Kubernetes API server does it for a
 * `kubectl apply --validate=strict`:
 *  1. null fields that the schema does not mark nullable are dropped, defaults are applied;
 *  2. the CRD's structural OpenAPI v3 schema is checked with ajv, with strict field
 *     validation: an object that lists `properties` (or none) and neither allows
 *     `additionalProperties` nor sets `x-kubernetes-preserve-unknown-fields` rejects any other
 *     field, reported as `unknown field "spec.x.y"`;
 *  3. the `x-kubernetes-validations` rules (CEL) are evaluated (see cel.ts for the subset);
 *  4. metadata gets the essentials of ObjectMeta validation (name required, a DNS-1123 subdomain).
 * `apiVersion` must be the CRD's group/version (cilium.io/v1alpha1).
 *
 * Without a CRD, only the essentials run (apiVersion, kind, metadata): the caller says so.
 * The schemas are compiled by bpfgate's one Ajv (core/schemas.ts), strict mode on: the
 * Kubernetes annotations (`x-kubernetes-list-type`, ...) are registered there, and the CEL
 * keyword here; a CRD with a keyword neither JSON Schema nor Kubernetes defines is refused
 * (an InputError naming the CRD file) rather than silently half-checked.
 * Invariant: one clear problem per field; ajv's branch noise (anyOf/oneOf, enum after a
 * type error) is folded away, and every problem carries the line and column of its node.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { InputError } from '../core/errors.js';
import { compileSchema, defineKeyword, knownFormats } from '../core/schemas.js';
import { pointerToPath } from '../core/yaml-input.js';
import type { PolicyProblem } from './model.js';
import { compileRule } from './cel.js';
import { CRD_GROUP, CRD_VERSION, type CrdSchema, type CrdSet } from './crd.js';
import { type JsonPath, type SourceDocument, formatPath } from './load.js';

type Schema = Record<string, unknown>;

const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
const LABEL_KEY = `^(${DNS1123_SUBDOMAIN.slice(1, -1)}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`;

/** Patterns worth a sentence instead of a regular expression in the message. */
const PATTERN_MEANING: Record<string, string> = {
  [DNS1123_SUBDOMAIN]: "a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and ending with a-z or 0-9)",
  [DNS1123_LABEL]: "a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a-z or 0-9)",
  [LABEL_VALUE]: "a label value (A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with an alphanumeric)",
  [LABEL_KEY]: 'a label key ([prefix/]name, name of at most 63 characters)',
};

/** The essentials of ObjectMeta that the API server validates for every object. */
const OBJECT_META: Schema = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', maxLength: 253, pattern: DNS1123_SUBDOMAIN },
    generateName: { type: 'string' },
    namespace: { type: 'string', maxLength: 63, pattern: DNS1123_LABEL },
    labels: {
      type: 'object',
      propertyNames: { maxLength: 317, pattern: LABEL_KEY },
      additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE },
    },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
    uid: { type: 'string' },
    resourceVersion: { type: 'string' },
    selfLink: { type: 'string' },
    generation: { type: 'integer' },
    creationTimestamp: { type: 'string' },
    deletionTimestamp: { type: 'string' },
    deletionGracePeriodSeconds: { type: 'integer' },
    finalizers: { type: 'array', items: { type: 'string' } },
    ownerReferences: { type: 'array', items: { type: 'object' } },
    managedFields: { type: 'array', items: { type: 'object' } },
  },
  additionalProperties: false,
};

/**
 * Keywords the conversion leaves out: `nullable` is spelled as a union type, and the long
 * descriptions only slow the compile down. The other Kubernetes annotations stay: the
 * shared Ajv knows them (core/schemas.ts KUBERNETES_KEYWORDS).
 */
const DROPPED = new Set(['description', 'nullable']);

/** `x-kubernetes-validations`: the CRD's CEL rules, in the subset cel.ts evaluates; the others are listed, not run. */
defineKeyword({
  keyword: 'x-kubernetes-validations',
  schemaType: 'array',
  compile(rules: Array<{ rule?: unknown; message?: unknown }>) {
    const checks = rules.map((r) => {
      const rule = String(r.rule);
      const fn = compileRule(rule);
      return { rule, fn, message: typeof r.message === 'string' ? r.message : `failed rule: ${rule}` };
    });
    const validate = (data: unknown): boolean => {
      const errors = checks
        .filter((c) => c.fn !== undefined && !c.fn(data))
        .map((c) => ({ keyword: 'x-kubernetes-validations', message: c.message, params: { rule: c.rule } }));
      (validate as unknown as { errors: unknown[] }).errors = errors;
      return errors.length === 0;
    };
    return validate;
  },
});

/** Validates policy documents of the TracingPolicy kinds. */
export interface SchemaValidator {
  /** The CRD source, or null when no CRD was given (only the essentials are checked). */
  readonly source: string | null;
  /** Kinds that have a CRD schema. */
  readonly kinds: readonly string[];
  /** CEL rules of the CRD that are outside the supported subset and so were not evaluated. */
  readonly rulesNotEvaluated: readonly string[];
  hasSchemaFor(kind: string): boolean;
  /** Problems of one document (a parsed, YAML-valid document of a policy kind). */
  validate(doc: SourceDocument): PolicyProblem[];
}

/** A validator for the CRDs in `crds`, or for the essentials only when `crds` is null. */
export function createValidator(crds: CrdSet | null): SchemaValidator {
  const compiled = new Map<string, { validate: ValidateFunction; openapi: Schema }>();
  const formats = knownFormats();
  const validatorFor = (kind: string) => {
    let entry = compiled.get(kind);
    if (!entry) {
      const crd = crds?.kinds.get(kind);
      // Null pruning and defaults follow the CRD's own schema, and ObjectMeta's for metadata.
      const raw = crd?.openAPIV3Schema ?? { type: 'object' };
      const openapi = { ...raw, properties: { ...((raw.properties as Schema | undefined) ?? {}), metadata: OBJECT_META } };
      entry = { validate: compileCrd(kind, crd, formats), openapi };
      compiled.set(kind, entry);
    }
    return entry;
  };
  // ajv compiles a CRD in about a second: compile a kind only when a document of it shows up,
  // but say up front which rules will not be evaluated.
  const rulesNotEvaluated = new Set<string>();
  for (const crd of crds?.kinds.values() ?? []) {
    for (const rule of rulesOf(crd.openAPIV3Schema)) if (!compileRule(rule)) rulesNotEvaluated.add(rule);
  }

  return {
    source: crds?.source ?? null,
    kinds: [...(crds?.kinds.keys() ?? [])],
    rulesNotEvaluated: [...rulesNotEvaluated],
    hasSchemaFor: (kind) => crds?.kinds.has(kind) ?? false,
    validate(doc) {
      const { validate, openapi } = validatorFor(doc.kind ?? '');
      const data = asApiServerSees(doc.value, openapi);
      if (validate(data)) return [];
      return problemsOf(doc, validate.errors ?? []);
    },
  };
}

/** The compiled document schema of one kind; a CRD schema ajv cannot compile is bad input in that CRD file. */
function compileCrd(kind: string, crd: CrdSchema | undefined, formats: ReadonlySet<string>): ValidateFunction {
  try {
    return compileSchema(rootSchema(kind, crd, formats));
  } catch (cause) {
    if (!crd) throw cause;
    throw new InputError('schema-source-invalid', crd.file, {}, `the openAPIV3Schema of ${kind} cannot be used: ${(cause as Error).message}`, cause);
  }
}

/** Every CEL rule (`x-kubernetes-validations[].rule`) in a schema. */
function rulesOf(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(rulesOf);
  if (typeof node !== 'object' || node === null) return [];
  const own = (node as Schema)['x-kubernetes-validations'];
  const rules = Array.isArray(own) ? own.map((r: { rule?: unknown }) => String(r.rule)) : [];
  return [...rules, ...Object.values(node).flatMap(rulesOf)];
}

/** The document schema of one kind: the CRD's (converted), with apiVersion, kind and metadata pinned. */
function rootSchema(kind: string, crd: CrdSchema | undefined, knownFormats: ReadonlySet<string>): Schema {
  const base: Schema = crd ? toAjvSchema(crd.openAPIV3Schema, knownFormats) : { type: 'object' };
  const properties = { ...((base.properties as Record<string, Schema> | undefined) ?? {}) };
  properties.apiVersion = { type: 'string', const: `${crd?.group ?? CRD_GROUP}/${crd?.version ?? CRD_VERSION}` };
  properties.kind = { type: 'string', const: kind };
  properties.metadata = OBJECT_META;
  const required = new Set([...((base.required as string[] | undefined) ?? []), 'apiVersion', 'kind', 'metadata']);
  return { ...base, type: 'object', properties, required: [...required] };
}

/**
 * An OpenAPI v3 structural schema as ajv reads it: unknown fields rejected where the API server
 * prunes them, `nullable` and `x-kubernetes-int-or-string` spelled as JSON Schema, formats kept
 * only on strings and only when ajv-formats knows them (the API server ignores unknown ones).
 * `typed`: the node is a branch of an allOf/anyOf/oneOf/not whose value has a stated type.
 */
export function toAjvSchema(node: Schema, knownFormats: ReadonlySet<string>, typed = false): Schema {
  const out: Schema = {};
  // Branches of a junctor check the same value: a type stated here (or above) holds for them.
  const branchesTyped = typed || node.type !== undefined;
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED.has(key)) continue;
    switch (key) {
      case 'properties':
        out.properties = Object.fromEntries(
          Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, toAjvSchema(v, knownFormats)]),
        );
        break;
      case 'items':
        out[key] = toAjvSchema(value as Schema, knownFormats);
        break;
      case 'not':
        out[key] = toAjvSchema(value as Schema, knownFormats, branchesTyped);
        break;
      case 'additionalProperties':
        out[key] = typeof value === 'object' && value !== null ? toAjvSchema(value as Schema, knownFormats) : value;
        break;
      case 'allOf':
      case 'anyOf':
      case 'oneOf':
        out[key] = (value as Schema[]).map((s) => toAjvSchema(s, knownFormats, branchesTyped));
        break;
      case 'format':
        if (node.type === 'string' && knownFormats.has(String(value))) out.format = value;
        break;
      // OpenAPI 3.0 spells an exclusive bound as a flag beside the bound; JSON Schema draft-07 as the bound itself.
      case 'exclusiveMinimum':
      case 'exclusiveMaximum': {
        const bound = key === 'exclusiveMinimum' ? 'minimum' : 'maximum';
        if (value === true && typeof node[bound] === 'number') out[key] = node[bound];
        else if (typeof value === 'number') out[key] = value;
        break;
      }
      default:
        out[key] = value;
    }
  }
  if (node['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (node.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  // The bound an exclusive flag made exclusive is not also an inclusive one.
  if (node.exclusiveMinimum === true) delete out.minimum;
  if (node.exclusiveMaximum === true) delete out.maximum;
  const isObject = node.type === 'object';
  if (isObject && node.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return typed ? out : scopeToTypes(out);
}

/** JSON Schema keywords that constrain values of one type only, and that type. */
const TYPED_KEYWORDS: Record<string, string> = {
  maxLength: 'string', minLength: 'string', pattern: 'string', format: 'string',
  maximum: 'number', minimum: 'number', exclusiveMaximum: 'number', exclusiveMinimum: 'number', multipleOf: 'number',
  maxItems: 'array', minItems: 'array', uniqueItems: 'array', items: 'array',
  maxProperties: 'object', minProperties: 'object', required: 'object', properties: 'object',
  additionalProperties: 'object', patternProperties: 'object', propertyNames: 'object', dependencies: 'object',
};

/**
 * A structural schema may leave the type out (an int-or-string, a preserved unknown field) and
 * still constrain the values of one type: an int-or-string's `pattern`. JSON Schema applies such a
 * keyword to values of its type only; ajv's strict mode (strictTypes) wants that said, so the
 * keyword moves under `if: {type: T}, then: {type: T, ...}`, which means exactly the same.
 */
function scopeToTypes(out: Schema): Schema {
  if (out.type !== undefined) return out;
  const byType = new Map<string, Schema>();
  const rest: Schema = {};
  for (const [key, value] of Object.entries(out)) {
    const type = TYPED_KEYWORDS[key];
    if (type) byType.set(type, { ...(byType.get(type) ?? { type }), [key]: value });
    else rest[key] = value;
  }
  if (byType.size === 0) return out;
  const scoped = [...byType.values()].map((then) => ({ if: { type: then.type }, then }));
  return { ...rest, allOf: [...((rest.allOf as Schema[] | undefined) ?? []), ...scoped] };
}

/**
 * What the API server validates: a copy of the document where fields set to null are dropped
 * unless their schema says `nullable`, and missing fields get their schema default.
 */
function asApiServerSees(value: unknown, schema: Schema | undefined): unknown {
  if (Array.isArray(value)) {
    const items = schema?.items as Schema | undefined;
    return value.map((v) => asApiServerSees(v, items));
  }
  if (typeof value !== 'object' || value === null) return value;
  const properties = (schema?.properties as Record<string, Schema> | undefined) ?? {};
  const additional = typeof schema?.additionalProperties === 'object' ? (schema.additionalProperties as Schema) : undefined;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const sub = properties[key] ?? additional;
    if (v === null && sub !== undefined && sub.nullable !== true) continue;
    out[key] = asApiServerSees(v, sub);
  }
  for (const [key, sub] of Object.entries(properties)) {
    if (!(key in out) && 'default' in sub) out[key] = structuredClone(sub.default);
  }
  return out;
}

/** ajv's errors as one problem per field, positioned in the YAML document. */
function problemsOf(doc: SourceDocument, errors: ErrorObject[]): PolicyProblem[] {
  // Inside an anyOf/oneOf, the branches' own errors are noise: the anyOf error speaks for them.
  const branchRoots = errors
    .filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')
    .map((e) => `${e.instancePath}\u0000${e.schemaPath}/`);
  const inBranch = (e: ErrorObject) => branchRoots.some((root) => `${e.instancePath}\u0000${e.schemaPath}`.startsWith(root));
  // An `if` error only says its `then` failed (scopeToTypes); the `then` errors say how.
  const relevant = errors.filter((e) => !inBranch(e) && e.keyword !== 'if');
  // A value of the wrong type also fails its enum or pattern: the type error is the one to fix.
  const typeFailed = new Set(relevant.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: PolicyProblem[] = [];
  for (const e of relevant) {
    if (e.keyword !== 'type' && typeFailed.has(e.instancePath)) continue;
    const problem = toProblem(doc, e, errors);
    const key = `${problem.path}\u0000${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems.sort((a, b) => a.line - b.line || a.column - b.column || (a.path < b.path ? -1 : 1));
}

function toProblem(doc: SourceDocument, e: ErrorObject, all: ErrorObject[]): PolicyProblem {
  const at = pointerToPath(e.instancePath);
  const base = { file: doc.file, reason: 'schema-invalid' as const, schemaPath: e.schemaPath };
  const got = e.data === undefined ? '' : ` (got ${show(e.data)})`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = [...at, String(e.params.additionalProperty)];
      return { ...base, ...doc.locate(field, 'key'), path: formatPath(field), message: `unknown field "${formatPath(field)}"` };
    }
    case 'required': {
      // The field is not there: point at the object that should hold it.
      const field = [...at, String(e.params.missingProperty)];
      return { ...base, ...doc.locate(at), path: formatPath(field), message: `must have required property "${String(e.params.missingProperty)}"` };
    }
    default: {
      if (e.propertyName !== undefined) {
        const field = [...at, e.propertyName];
        return { ...base, ...doc.locate(field, 'key'), path: formatPath(field), message: `field name ${show(e.propertyName)} ${messageOf(e, all).replace(/^must/, 'must be')}` };
      }
      return { ...base, ...doc.locate(at), path: formatPath(at), message: messageOf(e, all) + (showsValue(e) ? got : '') };
    }
  }
}

function messageOf(e: ErrorObject, all: ErrorObject[]): string {
  switch (e.keyword) {
    case 'enum':
      return `must be equal to one of the allowed values: ${(e.params.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'const':
      return `must be ${String(e.params.allowedValue)}`;
    case 'pattern': {
      const meaning = PATTERN_MEANING[String(e.params.pattern)];
      return meaning ? `must be ${meaning}` : `must match pattern "${String(e.params.pattern)}"`;
    }
    case 'anyOf':
    case 'oneOf': {
      // Name what the branches wanted: "must be integer or string".
      const wanted = all
        .filter((b) => b.keyword === 'type' && b.instancePath === e.instancePath && b.schemaPath.startsWith(`${e.schemaPath}/`))
        .map((b) => String(b.params.type));
      return wanted.length > 0 ? `must be ${[...new Set(wanted)].join(' or ')}` : (e.message ?? e.keyword);
    }
    case 'x-kubernetes-validations':
      return `${e.message ?? 'failed rule'} (rule: ${String(e.params.rule)})`;
    default:
      return e.message ?? e.keyword;
  }
}

/** Whether the offending value adds to the message (it does not for whole objects). */
function showsValue(e: ErrorObject): boolean {
  return !['x-kubernetes-validations', 'maxItems', 'minItems', 'maxProperties', 'minProperties'].includes(e.keyword) &&
    (typeof e.data !== 'object' || e.data === null || e.keyword === 'type');
}

function show(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  const text = JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
