/**
 * `bpfgate lint [--schema FILE|DIR|URL] [--arch LIST] [--format text|json] PATH...`
 *
 * Parses and validates policies (policy/index.ts) and prints one `file:line:col: reason: path:
 * message` line per error and per portability finding, then a summary; or, with --format json,
 * one JSON object. Exit code: 0 every policy valid; 1 a document is schema-invalid or a file is
 * not valid YAML; 2 bad usage, a missing path, an unusable schema source, or no policy at all;
 * 3 the schema could not be downloaded. Portability findings are findings: they never fail lint.
 * Such an error is printed by the CLI's one printer on stderr (with --format json, also as
 * one JSON object on stdout).
 */
import { BpfgateError } from '../../core/errors.js';
import { type ErrorSink, reportError } from '../errors.js';
import type { Arch } from '../../matrix/cell.js';
import { type PolicyDocument, type ReadPoliciesResult, policyWarnings, readPolicies } from '../../policy/index.js';
import type { Finding } from '../../policy/model.js';
import { ARCHES, portabilityFindings } from '../../policy/syscalls.js';

export interface LintOptions {
  paths: string[];
  schema?: string;
  arch?: Arch[];
  format: 'text' | 'json';
  out?: NodeJS.WritableStream;
  /** Where errors go (process.stderr by default), through the CLI's one printer. */
  err?: ErrorSink;
}

const HOW_TO_ENABLE_SCHEMA =
  'pass --schema with Tetragon\'s CRD: a directory of CRD files (e.g. --schema ../shared/corpus/crd), ' +
  "one CRD file, or the URL of the CRD YAML at a pinned Tetragon release";

/** Runs lint and returns its exit code. */
export async function lintCommand(opts: LintOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const arches = opts.arch ?? [];
  try {
    if (opts.paths.length === 0) throw new BpfgateError('usage', 'lint: give at least one policy file or directory');
    const unknown = arches.filter((a) => !ARCHES.includes(a));
    if (unknown.length > 0) throw new BpfgateError('usage', `lint: unknown arch ${unknown.join(',')}: expected ${ARCHES.join(' and/or ')}`);
    const result = await readPolicies(opts.paths, opts.schema === undefined ? {} : { schema: opts.schema });
    if (result.documents.length === 0) {
      const ignored = result.ignored.length ? ` (${result.ignored.length} document(s) of other kinds ignored)` : '';
      throw new BpfgateError('policy-none-found', `lint: no TracingPolicy or TracingPolicyNamespaced document in ${opts.paths.join(', ')}${ignored}`);
    }
    const report = buildReport(result, arches);
    out.write(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : textReport(report));
    return report.summary.invalid > 0 ? 1 : 0;
  } catch (error) {
    if (!(error instanceof BpfgateError)) throw error;
    // --format json promises one JSON object on stdout, an error included; stderr has the printer's line either way.
    if (opts.format === 'json') out.write(`${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`);
    return reportError(error, opts.err);
  }
}

/** The JSON form of the lint result; the text form is printed from it. */
export interface LintReport {
  documents: Array<Pick<PolicyDocument, 'file' | 'line' | 'column' | 'docIndex' | 'kind' | 'name' | 'valid' | 'schemaChecked'> & {
    namespace?: string;
    errors: Array<{ reason: string; line: number; column: number; path: string; schemaPath: string | null; message: string }>;
    findings: Array<{ arch: Arch; reason: string; message: string; hook: string; path: string | null; line: number; column: number | null }>;
    /** Valid, but not applied as written everywhere (policy/warnings.ts); never fails lint. */
    warnings: Array<{ code: string; message: string; path: string; line: number; column: number }>;
    hooks: Array<Record<string, unknown>>;
    needs: Array<{ feature: string; because: string; via?: string; line: number }>;
  }>;
  ignoredDocuments: Array<{ file: string; line: number; column: number; kind: string | null }>;
  schema: { used: boolean; source: string | null; kinds: string[]; notes: string[] };
  arches: Arch[];
  /**
   * policies: documents of a policy kind that are valid YAML; valid: those without errors;
   * invalid: every document with an error, the yamlInvalid ones included; ignored: other kinds.
   */
  summary: { policies: number; valid: number; invalid: number; yamlInvalid: number; ignored: number; findings: number; warnings: number };
}

function buildReport(result: ReadPoliciesResult, arches: Arch[]): LintReport {
  const notes: string[] = [];
  if (!result.schemaUsed) {
    notes.push(`the schema check did not run (no --schema): only apiVersion, kind and metadata were checked; ${HOW_TO_ENABLE_SCHEMA}`);
  } else {
    const uncovered = [...new Set(result.documents.filter((d) => d.policy && !d.schemaChecked).map((d) => d.kind))];
    for (const kind of uncovered) {
      notes.push(`${result.schemaUsed.source} has no CRD for ${kind}: those documents were checked for apiVersion, kind and metadata only`);
    }
    for (const rule of result.schemaUsed.rulesNotEvaluated) notes.push(`CRD validation rule not evaluated (outside bpfgate's CEL subset): ${rule}`);
  }
  const documents = result.documents.map((d) => documentReport(d, arches));
  const policies = result.documents.filter((d) => d.policy);
  return {
    documents,
    ignoredDocuments: result.ignored.map((i) => ({ file: i.file, line: i.line, column: i.column, kind: i.kind })),
    schema: {
      used: result.schemaUsed !== null,
      source: result.schemaUsed?.source ?? null,
      kinds: result.schemaUsed?.kinds ?? [],
      notes,
    },
    arches,
    summary: {
      policies: policies.length,
      valid: policies.filter((d) => d.valid).length,
      invalid: result.documents.filter((d) => !d.valid).length,
      yamlInvalid: result.documents.filter((d) => !d.policy).length,
      ignored: result.ignored.length,
      findings: documents.reduce((n, d) => n + d.findings.length, 0),
      warnings: documents.reduce((n, d) => n + d.warnings.length, 0),
    },
  };
}

function documentReport(d: PolicyDocument, arches: Arch[]): LintReport['documents'][number] {
  const findings: Finding[] = d.policy ? portabilityFindings(d.policy, arches) : [];
  return {
    file: d.file,
    line: d.line,
    column: d.column,
    docIndex: d.docIndex,
    kind: d.kind,
    name: d.name,
    ...(d.policy?.namespace !== undefined ? { namespace: d.policy.namespace } : {}),
    valid: d.valid,
    schemaChecked: d.schemaChecked,
    errors: d.problems.map((p) => ({
      reason: p.reason,
      line: p.line,
      column: p.column,
      path: p.path,
      schemaPath: p.schemaPath ?? null,
      message: p.message,
    })),
    warnings: d.policy ? policyWarnings(d.policy, d.locate) : [],
    findings: findings.map((f) => ({
      arch: f.arch,
      reason: f.reason,
      message: f.message,
      hook: f.hook,
      path: f.path ?? null,
      line: f.source.line,
      column: f.source.column ?? null,
    })),
    hooks: (d.policy?.hooks ?? []).map((h) => ({
      id: h.id,
      kind: h.kind,
      name: h.name,
      syscall: h.syscall,
      kretprobe: h.kretprobe,
      symbols: h.symbols,
      actions: h.actions,
      line: h.source.line,
      ...(h.list !== undefined ? { list: h.list } : {}),
      ...(h.generated !== undefined ? { generated: h.generated } : {}),
      ...(h.enforcer ? { enforcer: true } : {}),
    })),
    needs: (d.policy?.needs ?? []).map((n) => ({
      feature: n.feature,
      because: n.because,
      ...(n.via !== undefined ? { via: n.via } : {}),
      line: n.source.line,
    })),
  };
}

function textReport(report: LintReport): string {
  const lines: string[] = [];
  for (const note of report.schema.notes) lines.push(`note: ${note}`);
  for (const d of report.documents) {
    // Errors and findings of a document in line order, as an editor would list them.
    const entries = [
      ...d.errors.map((e) => ({
        line: e.line,
        column: e.column,
        text: `${e.reason}: ${e.path === '' ? '' : `${e.path}: `}${e.message}${e.schemaPath ? ` [schema ${e.schemaPath}]` : ''}`,
      })),
      ...d.findings.map((f) => ({ line: f.line, column: f.column ?? 1, text: `${f.reason}: ${f.path ?? f.hook}: ${f.arch}: ${f.message}` })),
      ...d.warnings.map((w) => ({ line: w.line, column: w.column, text: `warning: ${w.path}: ${w.message}` })),
    ].sort((a, b) => a.line - b.line || a.column - b.column);
    for (const e of entries) lines.push(`${d.file}:${e.line}:${e.column}: ${e.text}`);
  }
  for (const i of report.ignoredDocuments) {
    lines.push(`${i.file}:${i.line}:${i.column}: ignored: ${i.kind === null ? 'a document without a kind' : `kind ${i.kind}`} is not a TracingPolicy`);
  }
  const s = report.summary;
  const parts = [
    `${s.valid} valid, ${s.invalid - s.yamlInvalid} invalid of ${s.policies} ${s.policies === 1 ? 'policy' : 'policies'}`,
    `${s.yamlInvalid} not valid YAML`,
    `${s.ignored} ignored ${s.ignored === 1 ? 'document' : 'documents'}`,
  ];
  if (s.warnings > 0) parts.push(`${s.warnings} ${s.warnings === 1 ? 'warning' : 'warnings'}`);
  if (report.arches.length > 0) parts.push(`${s.findings} portability ${s.findings === 1 ? 'finding' : 'findings'} (${report.arches.join(', ')})`);
  parts.push(report.schema.used ? `schema: ${report.schema.source}` : 'schema: not checked');
  lines.push(`lint: ${parts.join('; ')}`);
  return `${lines.join('\n')}\n`;
}
