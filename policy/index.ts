/**
 * The policy folder's front door: read policy files in stages (parse -> schema -> meaning)
 * and hand back every document with its problems, its hooks and its needs.
 *
 * Invariants: invalid documents are returned too (with their problems), so reports can show
 * them; only a missing path or an unusable schema source throws (InputError), and a schema
 * download failure throws an InfraError. Without a schema, the essentials (apiVersion, kind,
 * metadata.name) are still checked and `schemaUsed` is null.
 */
import { basename } from 'node:path';
import { loadCrds } from './crd.js';
import { hooksAndNeeds } from './hooks.js';
import { type SourceDocument, loadDocuments } from './load.js';
import type { Policy, PolicyKind, PolicyProblem } from './model.js';
import { createValidator } from './schema.js';

export type { HooksAndNeeds } from './hooks.js';
export { hooksAndNeeds } from './hooks.js';
export { portabilityFindings } from './syscalls.js';
export { policyWarnings } from './warnings.js';

export const POLICY_KINDS: readonly PolicyKind[] = ['TracingPolicy', 'TracingPolicyNamespaced'];

/** One document that is, or may be, a policy: valid YAML of a policy kind, or not valid YAML at all. */
export interface PolicyDocument {
  file: string;
  /** The file's path relative to the `--policies` path it was found under (see PolicyOrigin). */
  relPath: string;
  line: number;
  column: number;
  docIndex: number;
  /** The document's kind, when it could be read (even from broken YAML). */
  kind: string | null;
  name: string | null;
  /** Absent only when the document is not valid YAML. */
  policy?: Policy;
  problems: PolicyProblem[];
  valid: boolean;
  /** Whether a CRD schema covered this document's kind (false: only the essentials were checked). */
  schemaChecked: boolean;
  /** Line and column of a JSON path in this document (`['spec', 'kprobes', 0]`), for annotations. */
  locate: SourceDocument['locate'];
}

/** A valid YAML document of another kind (a Pod, a ConfigMap, ...): reported, then left alone. */
export interface IgnoredDocument {
  file: string;
  line: number;
  column: number;
  docIndex: number;
  /** Null when the document has no string `kind` (a list, a scalar, a map without kind). */
  kind: string | null;
}

export interface SchemaUsed {
  /** The --schema argument: a file, a directory or a URL. */
  source: string;
  kinds: string[];
  /** CEL rules of the CRD outside the subset bpfgate evaluates. */
  rulesNotEvaluated: string[];
}

export interface ReadPoliciesResult {
  documents: PolicyDocument[];
  /** The policies of `documents`, valid or not, in file order. */
  policies: Policy[];
  /** Every problem of every document. */
  problems: PolicyProblem[];
  ignored: IgnoredDocument[];
  schemaUsed: SchemaUsed | null;
}

export interface ReadPoliciesOptions {
  /** A CRD YAML file, a directory of CRD files, or a URL of one. */
  schema?: string;
}

/** Reads every policy document under `paths`. */
export async function readPolicies(paths: readonly string[], opts: ReadPoliciesOptions = {}): Promise<ReadPoliciesResult> {
  // The schema source is read first: a bad --schema is reported before any policy is.
  const crds = opts.schema === undefined ? null : await loadCrds(opts.schema);
  const validator = createValidator(crds);
  const sources = await loadDocuments(paths);
  const documents: PolicyDocument[] = [];
  const ignored: IgnoredDocument[] = [];
  for (const doc of sources) {
    const at = { file: doc.file, line: doc.line, column: doc.column, docIndex: doc.docIndex };
    if (doc.yamlProblem) {
      documents.push({ ...at, relPath: doc.relPath, kind: doc.kind ?? null, name: doc.name ?? null, problems: [doc.yamlProblem], valid: false, schemaChecked: false, locate: doc.locate });
      continue;
    }
    if (!isPolicyKind(doc.kind) || !isRecord(doc.value)) {
      ignored.push({ ...at, kind: doc.kind ?? null });
      continue;
    }
    const problems = validator.validate(doc);
    const { hooks, needs } = hooksAndNeeds(doc);
    const metadata = isRecord(doc.value.metadata) ? doc.value.metadata : {};
    const policy: Policy = {
      kind: doc.kind,
      // A nameless policy still needs a subject: its file and line stand in for the name.
      name: typeof metadata.name === 'string' && metadata.name !== '' ? metadata.name : `${basename(doc.file)}:${doc.line}`,
      source: { file: doc.file, line: doc.line, column: doc.column },
      origin: { root: doc.root, relPath: doc.relPath },
      docIndex: doc.docIndex,
      doc: doc.value,
      hooks,
      needs,
    };
    if (typeof metadata.namespace === 'string') policy.namespace = metadata.namespace;
    documents.push({
      ...at,
      relPath: doc.relPath,
      kind: doc.kind,
      name: doc.name ?? null,
      policy,
      problems,
      valid: problems.length === 0,
      schemaChecked: validator.hasSchemaFor(doc.kind),
      locate: doc.locate,
    });
  }
  return {
    documents,
    policies: documents.flatMap((d) => (d.policy ? [d.policy] : [])),
    problems: documents.flatMap((d) => d.problems),
    ignored,
    schemaUsed: crds ? { source: crds.source, kinds: [...validator.kinds], rulesNotEvaluated: [...validator.rulesNotEvaluated] } : null,
  };
}

export function isPolicyKind(kind: unknown): kind is PolicyKind {
  return typeof kind === 'string' && (POLICY_KINDS as readonly string[]).includes(kind);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
