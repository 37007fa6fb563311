/**
 * Positioned YAML input, shared by the matrix and baseline loaders: parse a file
 * once, keep its node ranges, and turn a problem found at a field path (by the
 * parser, by a JSON Schema, by a meaning check) into an InputError that names the
 * file, the line and column, the field path and what was expected.
 * Invariant: every error thrown from here is an InputError; nothing here reads disk.
 */
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, isMap, isNode, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { InputError } from './errors.js';

/** A path into the document: map keys and sequence indexes. */
export type FieldPath = readonly (string | number)[];

export interface Position {
  line: number;
  column: number;
}

/** `kernels[0].debian.suite`; the empty path is the whole document. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? '(document)' : out;
}

/** One ajv instance for every bpfgate schema: all errors, so the first in document order can be reported. */
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictRequired: false, useDefaults: false });

/** Compile a bundled JSON Schema once. */
export function compileSchema<T>(schema: AnySchemaObject): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

export class YamlInput {
  private constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    /** The document as plain JSON (null for an empty file). */
    readonly value: unknown,
  ) {}

  /** Stage 1: parse. A syntax error becomes an InputError with `code`. */
  static parse(text: string, file: string, code: string): YamlInput {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const problem = doc.errors[0];
    if (problem) {
      const { line, col } = lines.linePos(problem.pos[0]);
      const firstLine = problem.message.split('\n')[0] ?? problem.message;
      throw new InputError(code, file, { line, column: col }, `not valid YAML: ${firstLine}`, problem);
    }
    return new YamlInput(file, doc, lines, doc.toJS({ maxAliasCount: 100 }) ?? null);
  }

  /**
   * Where a field is: its value's start, or the key itself when `atKey`; a missing
   * field is placed at the nearest existing parent.
   */
  positionOf(path: FieldPath, atKey = false): Position {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (const [i, part] of path.entries()) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === part);
        if (!pair) break;
        const keyStart = rangeStart(pair.key);
        const valueStart = rangeStart(pair.value);
        if ((last && atKey) || valueStart === undefined) {
          offset = keyStart ?? offset;
          break;
        }
        offset = valueStart;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        const item = node.items[part];
        const start = rangeStart(item);
        if (start === undefined) break;
        offset = start;
        node = item;
      } else {
        break;
      }
    }
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /** An InputError at a field: `file:line:col: path: message`. */
  error(code: string, path: FieldPath, message: string, opts: { atKey?: boolean; cause?: unknown } = {}): InputError {
    return new InputError(code, this.file, this.positionOf(path, opts.atKey), `${formatPath(path)}: ${message}`, opts.cause);
  }

  /** `line N, column M` of a field, for messages that name a second position. */
  describePosition(path: FieldPath): string {
    const { line, column } = this.positionOf(path);
    return `${formatPath(path)} (line ${line}, column ${column})`;
  }

  /** Stage 2: schema. Throws the first problem in document order as an InputError with `code`. */
  validate<T>(validate: ValidateFunction<T>, code: string): T {
    if (validate(this.value)) return this.value;
    const problems = explainSchemaErrors(validate.errors ?? []);
    const located = problems.map((p) => ({ ...p, pos: this.positionOf(p.path, p.atKey) }));
    located.sort((a, b) => a.pos.line - b.pos.line || a.pos.column - b.pos.column);
    const first = located[0];
    if (!first) throw new InputError(code, this.file, {}, 'does not match its schema');
    const more = located.length > 1 ? ` (and ${located.length - 1} more problem${located.length > 2 ? 's' : ''})` : '';
    throw new InputError(code, this.file, first.pos, `${formatPath(first.path)}: ${first.message}${more}`);
  }
}

interface SchemaProblem {
  path: (string | number)[];
  atKey: boolean;
  message: string;
}

/** JSON pointer `/kernels/0/pages` -> ['kernels', 0, 'pages']. */
function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

/** Ajv errors -> "what was expected" sentences, one per problem, without oneOf branch noise. */
function explainSchemaErrors(errors: ErrorObject[]): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  const oneOfPaths = new Set(errors.filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath));
  for (const e of errors) {
    const path = pointerToPath(e.instancePath);
    const got = describeValue(e.data);
    // Branch errors of a oneOf only say why each alternative failed; the oneOf error says it better.
    if (e.schemaPath.includes('/oneOf/') && oneOfPaths.has(e.instancePath)) continue;
    switch (e.keyword) {
      case 'required':
        out.push({ path, atKey: false, message: `missing required field "${String(e.params.missingProperty)}"` });
        break;
      case 'additionalProperties': {
        const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
        const name = String(e.params.additionalProperty);
        out.push({ path: [...path, name], atKey: true, message: `unknown field "${name}"; expected one of: ${known.join(', ')}` });
        break;
      }
      case 'enum':
        out.push({ path, atKey: false, message: `expected one of: ${(e.params.allowedValues as unknown[]).map(String).join(', ')} (got ${got})` });
        break;
      case 'type':
        out.push({ path, atKey: false, message: `expected ${article(String(e.params.type))} (got ${got})` });
        break;
      case 'pattern':
        out.push({ path, atKey: false, message: `expected a string matching ${String(e.params.pattern)} (got ${got})` });
        break;
      case 'minLength':
        out.push({ path, atKey: false, message: 'expected a non-empty string' });
        break;
      case 'minItems':
        out.push({ path, atKey: false, message: `expected a list of at least ${String(e.params.limit)} item(s)` });
        break;
      case 'oneOf': {
        const alternatives = ((e.schema as { required?: string[] }[] | undefined) ?? []).flatMap((s) => s.required ?? []);
        out.push({ path, atKey: false, message: `expected exactly one of: ${alternatives.join(', ')}` });
        break;
      }
      default:
        out.push({ path, atKey: false, message: e.message ?? `fails ${e.keyword}` });
    }
  }
  return out;
}

function article(type: string): string {
  const nouns: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', number: 'a number', integer: 'an integer', boolean: 'true or false' };
  return nouns[type] ?? type;
}
