/**
 * Positioned input: the one reader of bpfgate's input files. Policies and CRDs,
 * matrix, config, lock file, triggers and baselines are parsed here (JSON files
 * are YAML too), once, keeping the node ranges, so any field path maps back to a
 * line and column; a problem found by the parser, by a JSON Schema (core/schemas.ts)
 * or by a meaning check becomes an InputError that names the file, the line and
 * column, the field path and what was expected.
 *
 * Three dialects: `yaml` (YAML 1.2, the default), `kubernetes` (the YAML 1.1 rules of
 * Kubernetes' decoder, go-yaml v2: `yes`/`on` are booleans and `0777` is octal, but
 * times and timestamps stay strings as they do on their way to JSON), and `json`
 * (strict JSON: the value is JSON.parse's, the positions are the YAML parser's).
 *
 * Invariants: `parse` and `read` throw only InputErrors; `parseAll` never throws, and
 * gives a document that is not valid YAML a positioned `problem`, with its `kind`-like
 * fields still readable through `stringAt`. Positions are 1-based.
 */
import { readFile } from 'node:fs/promises';
import type { ErrorObject, ValidateFunction } from 'ajv';
import {
  type Document,
  type DocumentOptions,
  type Node,
  type ParseOptions,
  type ParsedNode,
  type SchemaOptions,
  type Tags,
  LineCounter,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  parseDocument,
  visit,
} from 'yaml';
import { InputError } from './errors.js';

/** A path into the document: map keys and sequence indexes. */
export type FieldPath = readonly (string | number)[];

export interface Position {
  line: number;
  column: number;
}

export type Dialect = 'yaml' | 'kubernetes' | 'json';

export interface InputOptions {
  /** `yaml` by default; `json` is for files of one document (`parse`, `read`). */
  dialect?: Dialect;
}

/** Why a document is not valid YAML (or JSON), at the offending token. */
export interface SyntaxProblem extends Position {
  /** The parser's message, one line. */
  message: string;
  /** The parser's error code (BAD_INDENT, MISSING_CHAR, ...), or JSON for a strict-JSON refusal. */
  code: string;
}

/** `kernels[0].debian.suite`; the empty path is `whole` ("(document)" unless the caller says otherwise). */
export function formatPath(path: FieldPath, whole = '(document)'): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? whole : out;
}

/** Kubernetes' YAML 1.1 without the two resolutions that go-yaml v2 does not make. */
function kubernetesTags(tags: Tags): Tags {
  return tags.filter((tag) =>
    typeof tag === 'string'
      ? !['timestamp', 'intTime', 'floatTime'].includes(tag)
      : tag.tag !== 'tag:yaml.org,2002:timestamp' && !('format' in tag && tag.format === 'TIME'),
  );
}

function parserOptions(dialect: Dialect, lineCounter: LineCounter): ParseOptions & DocumentOptions & SchemaOptions {
  const common = { lineCounter, prettyErrors: false, uniqueKeys: true };
  return dialect === 'kubernetes' ? { ...common, version: '1.1', customTags: kubernetesTags } : common;
}

const MAX_ALIASES = 1000;

/** Read an input file's text; a file that cannot be read is an InputError with `code`. */
export async function readInputText(file: string, code: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new InputError(code, file, {}, `cannot read the ${what}: ${(cause as Error).message}`, cause);
  }
}

/** One document of an input file, with the positions of its nodes. */
export class YamlInput {
  /** The document as plain JSON: null for an empty document, undefined when it has a `problem`. */
  readonly value: unknown;
  /** Set when the document is not valid YAML (or JSON): the first error, positioned. */
  readonly problem: SyntaxProblem | undefined;

  private constructor(
    readonly file: string,
    /** Index of the document in its file (0-based, counting empty documents too). */
    readonly docIndex: number,
    private readonly text: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    dialect: Dialect,
  ) {
    const first = [...doc.errors].sort((a, b) => a.pos[0] - b.pos[0])[0];
    if (first) {
      this.problem = { ...this.positionAt(first.pos[0]), message: first.message.split('\n')[0] ?? first.message, code: first.code };
    } else if (dialect === 'json') {
      try {
        this.value = JSON.parse(text) as unknown;
      } catch (error) {
        this.problem = this.jsonProblem(error as Error);
      }
    } else {
      this.value = doc.toJS({ maxAliasCount: MAX_ALIASES }) ?? null;
    }
  }

  /** Stage 1, for a file of one document: parse. A syntax error becomes an InputError with `code`. */
  static parse(text: string, file: string, code: string, opts: InputOptions = {}): YamlInput {
    const dialect = opts.dialect ?? 'yaml';
    const lines = new LineCounter();
    const doc = parseDocument(text, parserOptions(dialect, lines));
    const input = new YamlInput(file, 0, text, doc, lines, dialect);
    if (input.problem) {
      const { line, column, message } = input.problem;
      throw new InputError(code, file, { line, column }, `not valid ${dialect === 'json' ? 'JSON' : 'YAML'}: ${message}`);
    }
    return input;
  }

  /**
   * Every non-empty document of a file (policies, CRDs). Never throws: a document that is
   * not valid YAML comes back with its `problem` and no `value`.
   */
  static parseAll(text: string, file: string, opts: InputOptions = {}): YamlInput[] {
    const dialect = opts.dialect ?? 'yaml';
    const lines = new LineCounter();
    const docs = parseAllDocuments(text, parserOptions(dialect, lines));
    // An empty stream comes back as an EmptyStream (an array with no documents).
    const list: Document.Parsed[] = Array.isArray(docs) ? docs : [];
    const out: YamlInput[] = [];
    list.forEach((doc, docIndex) => {
      const contents = doc.contents;
      const empty = contents === null || (isScalar(contents) && contents.value === null);
      if (doc.errors.length === 0 && empty) return;
      out.push(new YamlInput(file, docIndex, text, doc, lines, dialect));
    });
    return out;
  }

  /** Read and parse a file of one document: `codes.missing` when it cannot be read, `codes.syntax` when it does not parse. */
  static async read(file: string, codes: { missing: string; syntax: string }, what: string, opts: InputOptions = {}): Promise<YamlInput> {
    return YamlInput.parse(await readInputText(file, codes.missing, what), file, codes.syntax, opts);
  }

  /** Where the document starts: its first node (usually its first key), after any comments. */
  get start(): Position {
    return this.positionAt(this.doc.contents?.range[0] ?? this.doc.range[0]);
  }

  /**
   * Where a field is: its value node, or with `at: 'key'` the key that names the last
   * segment. A path that does not exist resolves to its deepest existing node; a key
   * without a value resolves to the key.
   */
  locate(path: FieldPath, at: 'value' | 'key' = 'value'): Position {
    return this.positionAt(this.offsetOf(path, at) ?? this.doc.contents?.range[0] ?? this.doc.range[0]);
  }

  /** A string scalar at `path`, read from the parse tree, so it works in a document with YAML errors too. */
  stringAt(path: FieldPath): string | undefined {
    if (!isMap(this.doc.contents)) return undefined;
    const value: unknown = this.doc.getIn(path as (string | number)[]);
    return typeof value === 'string' ? value : undefined;
  }

  /** An InputError at a field: `file:line:col: path: message`. */
  error(code: string, path: FieldPath, message: string, opts: { atKey?: boolean; cause?: unknown } = {}): InputError {
    const field = formatPath(path);
    return new InputError(code, this.file, { ...this.locate(path, opts.atKey ? 'key' : 'value'), field }, `${field}: ${message}`, opts.cause);
  }

  /** `path (line N, column M)`, for messages that name a second position. */
  describePosition(path: FieldPath): string {
    const { line, column } = this.locate(path);
    return `${formatPath(path)} (line ${line}, column ${column})`;
  }

  /** Stage 2: schema. Throws the first problem in document order as an InputError with `code`. */
  validate<T>(validate: ValidateFunction<T>, code: string): T {
    if (validate(this.value)) return this.value;
    const located = explainSchemaErrors(validate.errors ?? []).map((p) => ({ ...p, pos: this.locate(p.path, p.atKey ? 'key' : 'value') }));
    located.sort((a, b) => a.pos.line - b.pos.line || a.pos.column - b.pos.column);
    const first = located[0];
    if (!first) throw new InputError(code, this.file, {}, 'does not match its schema');
    const more = located.length > 1 ? ` (and ${located.length - 1} more problem${located.length > 2 ? 's' : ''})` : '';
    const field = formatPath(first.path);
    throw new InputError(code, this.file, { ...first.pos, field }, `${field}: ${first.message}${more}`);
  }

  /**
   * 1-based line and column of an offset. The parser often reports an indentation error at
   * the start of the line; the offending token is the first non-blank character after it.
   */
  private positionAt(offset: number): Position {
    const text = this.text;
    let at = offset;
    while (at < text.length && (text[at] === ' ' || text[at] === '\t')) at++;
    if (at >= text.length || text[at] === '\n' || text[at] === '\r') at = offset;
    const { line, col } = this.lines.linePos(at);
    return { line, column: col };
  }

  /** Offset of the node at `path` (or its key), or of the deepest node that exists on the way. */
  private offsetOf(path: FieldPath, at: 'value' | 'key'): number | undefined {
    let node: Node | null | undefined = this.doc.contents;
    let best = node?.range?.[0];
    for (const [i, segment] of path.entries()) {
      node = isAlias(node) ? (node.resolve(this.doc) as Node | undefined) : node;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) return best;
        const key = pair.key as ParsedNode;
        if (last && at === 'key') return key.range[0];
        node = pair.value as Node | null;
        // `key:` with no value has no node: the key is the best place to point at.
        best = node?.range?.[0] ?? key.range[0];
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment] as Node | undefined;
        if (!node) return best;
        best = node.range?.[0] ?? best;
      } else {
        return best;
      }
    }
    return best;
  }

  /**
   * Where strict JSON refused what YAML accepted: JSON.parse's "position N" when its
   * message has one (not every V8 message does), else the first node written in a way
   * JSON does not allow (an unquoted or single-quoted string, a block collection, a comment).
   */
  private jsonProblem(error: Error): SyntaxProblem {
    const message = error.message.split('\n')[0] ?? error.message;
    const at = /position (\d+)/.exec(message);
    if (at) return { ...this.positionAt(Number(at[1])), message, code: 'JSON' };
    let offset: number | undefined;
    visit(this.doc, (_key, node) => {
      if (!isNode(node) || writtenAsJson(node)) return undefined;
      offset = node.range?.[0];
      return visit.BREAK;
    });
    return { ...this.positionAt(offset ?? this.text.length), message, code: 'JSON' };
  }
}

/** A node spelled as JSON spells it: a double-quoted string, a number/true/false/null, a flow collection. */
function writtenAsJson(node: Node): boolean {
  if (isScalar(node)) return node.type === 'QUOTE_DOUBLE' || (node.type === 'PLAIN' && typeof node.value !== 'string');
  if (isMap(node) || isSeq(node)) return node.flow === true;
  return true;
}

interface SchemaProblem {
  path: (string | number)[];
  atKey: boolean;
  message: string;
}

/** JSON pointer `/kernels/0/pages` -> ['kernels', 0, 'pages'] (RFC 6901). */
export function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** What a schema branch accepts, in words: "a string", "a list of strings". */
function describeSchema(s: Branch): string | undefined {
  if (typeof s.type !== 'string') return undefined;
  if (s.type === 'array' && typeof s.items?.type === 'string') return `a list of ${plural(s.items.type)}`;
  return article(s.type);
}

type Branch = { type?: unknown; items?: { type?: unknown }; required?: string[] };

/** The branches of a failed oneOf whose type the value has: their own errors say what is wrong. */
function matchedBranches(e: ErrorObject): number[] {
  const branches = (e.schema as Branch[] | undefined) ?? [];
  const type = jsonType(e.data);
  return branches.flatMap((b, i) => (b.type === type || (b.type === 'number' && type === 'integer') ? [i] : []));
}

/** Ajv errors -> "what was expected" sentences, one per problem, without oneOf branch noise. */
function explainSchemaErrors(errors: ErrorObject[]): SchemaProblem[] {
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf').map((e) => ({ e, matched: matchedBranches(e) }));
  const isNoise = (x: ErrorObject) =>
    oneOfs.some(({ e, matched }) => {
      if (!x.schemaPath.startsWith(`${e.schemaPath}/`)) return false;
      // Without a branch of the value's type, the oneOf error speaks for all branches at its value.
      if (matched.length === 0) return x.instancePath === e.instancePath;
      if (x.instancePath !== e.instancePath && !x.instancePath.startsWith(`${e.instancePath}/`)) return false;
      return !matched.includes(Number(x.schemaPath.slice(e.schemaPath.length + 1).split('/')[0]));
    });
  const out: SchemaProblem[] = [];
  for (const e of errors) {
    if (isNoise(e)) continue;
    const path = pointerToPath(e.instancePath);
    const got = describeValue(e.data);
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
      case 'const':
        out.push({ path, atKey: false, message: `expected ${JSON.stringify(e.params.allowedValue)} (got ${got})` });
        break;
      case 'type':
        out.push({ path, atKey: false, message: `expected ${String(e.params.type).split(',').map(article).join(' or ')} (got ${got})` });
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
      case 'minimum':
        out.push({ path, atKey: false, message: `expected at least ${String(e.params.limit)} (got ${got})` });
        break;
      case 'oneOf': {
        if (oneOfs.find((o) => o.e === e)?.matched.length) break;
        const branches = (e.schema as Branch[] | undefined) ?? [];
        const required = branches.flatMap((s) => s.required ?? []);
        const typed = branches.map(describeSchema).filter((d): d is string => d !== undefined);
        out.push({
          path,
          atKey: false,
          message: required.length > 0 ? `expected exactly one of: ${required.join(', ')}` : `expected ${typed.join(' or ')} (got ${got})`,
        });
        break;
      }
      default:
        out.push({ path, atKey: false, message: e.message ?? `fails ${e.keyword}` });
    }
  }
  return out;
}

function article(type: string): string {
  const nouns: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', number: 'a number', integer: 'an integer', boolean: 'true or false', null: 'null' };
  return nouns[type] ?? type;
}

function plural(type: string): string {
  const nouns: Record<string, string> = { object: 'mappings', array: 'lists', string: 'strings', number: 'numbers', integer: 'integers', boolean: 'booleans' };
  return nouns[type] ?? type;
}
