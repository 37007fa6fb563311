/**
 * Reading policy files: paths (files or directories, walked recursively for .yaml/.yml)
 * become YAML documents with positions. Every document keeps its parse tree and line
 * counter, so any JSON path inside it maps back to a line and column.
 *
 * Invariants: files come in a stable sorted order; a file that is not valid YAML yields a
 * `yaml-invalid` problem at the error's position and never throws; empty documents are
 * skipped; a path that does not exist is an InputError. YAML is read with the 1.1 rules
 * that Kubernetes' own YAML decoder (go-yaml v2) uses, so `yes`/`on` are booleans and
 * `0777` is octal, but times and timestamps stay strings as they do on their way to JSON.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import {
  type Document,
  type Node,
  type ParsedNode,
  type Tags,
  LineCounter,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
} from 'yaml';
import { InputError } from '../core/errors.js';
import type { PolicyProblem } from './model.js';

/** A path into a JSON document: object keys and array indexes. */
export type JsonPath = ReadonlyArray<string | number>;

export interface Position {
  line: number;
  column: number;
}

/** One YAML document of one file. */
export interface SourceDocument {
  file: string;
  /** Index of the document in its file (0-based, counting empty documents too). */
  docIndex: number;
  /** Position of the document's first node: its first key, usually `apiVersion`. */
  line: number;
  column: number;
  /** The document as plain JSON; undefined when the document is not valid YAML. */
  value: unknown;
  /** `kind` when the document has one, read even from a document with YAML errors. */
  kind: string | undefined;
  /** `metadata.name`, read the same way. */
  name: string | undefined;
  /** Set when the document is not valid YAML: the first error, positioned. */
  yamlProblem?: PolicyProblem;
  /**
   * Where a JSON path sits in the document: the value node, or with `at: 'key'` the key that
   * names the last segment. A path that does not exist resolves to its deepest existing node.
   */
  locate(path: JsonPath, at?: 'value' | 'key'): Position;
}

const POLICY_FILE = /\.ya?ml$/i;

/** Files named by `paths`, with directories walked recursively; sorted, without duplicates. */
export async function collectPolicyFiles(paths: readonly string[]): Promise<string[]> {
  const files = new Set<string>();
  const seenDirs = new Set<string>();
  for (const path of paths) {
    const info = await stat(path).catch((cause: unknown) => {
      throw new InputError('policy-path-missing', path, {}, 'no such file or directory', cause);
    });
    if (info.isDirectory()) await walk(path, files, seenDirs);
    // A file named explicitly is read whatever its extension: the user asked for it.
    else files.add(path);
  }
  return [...files].sort(byCodeUnits);
}

async function walk(dir: string, files: Set<string>, seenDirs: Set<string>): Promise<void> {
  // Symlinked directories are followed once, so a link cycle cannot loop forever.
  const real = await realpath(dir);
  if (seenDirs.has(real)) return;
  seenDirs.add(real);
  const names = (await readdir(dir)).sort(byCodeUnits);
  for (const name of names) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined); // a dangling link is not a policy
    if (info?.isDirectory()) await walk(path, files, seenDirs);
    else if (info?.isFile() && POLICY_FILE.test(extname(name))) files.add(path);
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every non-empty document of every file under `paths`, in file order. */
export async function loadDocuments(paths: readonly string[]): Promise<SourceDocument[]> {
  const documents: SourceDocument[] = [];
  for (const file of await collectPolicyFiles(paths)) {
    const text = await readFile(file, 'utf8').catch((cause: unknown) => {
      throw new InputError('policy-unreadable', file, {}, `cannot read: ${(cause as Error).message}`, cause);
    });
    documents.push(...parseDocuments(file, text));
  }
  return documents;
}

/** Kubernetes' YAML 1.1 without the two resolutions that go-yaml v2 does not make. */
function kubernetesTags(tags: Tags): Tags {
  return tags.filter((tag) =>
    typeof tag === 'string'
      ? !['timestamp', 'intTime', 'floatTime'].includes(tag)
      : tag.tag !== 'tag:yaml.org,2002:timestamp' && !('format' in tag && tag.format === 'TIME'),
  );
}

/** The non-empty documents of one file's text. Never throws on bad YAML. */
export function parseDocuments(file: string, text: string): SourceDocument[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter,
    prettyErrors: false,
    version: '1.1',
    customTags: kubernetesTags,
  });
  // An empty stream comes back as an EmptyStream (an array with no documents).
  const list: Array<Document.Parsed> = Array.isArray(docs) ? docs : [];
  const out: SourceDocument[] = [];
  list.forEach((doc, docIndex) => {
    const contents = doc.contents;
    const broken = doc.errors.length > 0;
    if (!broken && (contents === null || (isScalar(contents) && contents.value === null))) return;
    const start = positionAt(text, lineCounter, contents?.range[0] ?? doc.range[0]);
    const located = (path: JsonPath, at: 'value' | 'key' = 'value'): Position =>
      positionAt(text, lineCounter, offsetOf(doc, path, at) ?? contents?.range[0] ?? doc.range[0]);
    const source: SourceDocument = {
      file,
      docIndex,
      ...start,
      value: broken ? undefined : doc.toJS({ maxAliasCount: 1000 }),
      kind: stringAt(doc, ['kind']),
      name: stringAt(doc, ['metadata', 'name']),
      locate: located,
    };
    if (broken) source.yamlProblem = yamlProblem(file, text, lineCounter, doc);
    out.push(source);
  });
  return out;
}

function yamlProblem(file: string, text: string, lineCounter: LineCounter, doc: Document.Parsed): PolicyProblem {
  const first = [...doc.errors].sort((a, b) => a.pos[0] - b.pos[0])[0]!;
  const at = positionAt(text, lineCounter, first.pos[0]);
  return {
    file,
    ...at,
    reason: 'yaml-invalid',
    path: '',
    message: `${first.message} (${first.code})`,
  };
}

/**
 * 1-based line and column of an offset. The parser often reports an indentation error at
 * the start of the line; the offending token is the first non-blank character after it.
 */
function positionAt(text: string, lineCounter: LineCounter, offset: number): Position {
  let at = offset;
  while (at < text.length && (text[at] === ' ' || text[at] === '\t')) at++;
  if (at >= text.length || text[at] === '\n' || text[at] === '\r') at = offset;
  const { line, col } = lineCounter.linePos(at);
  return { line, column: col };
}

/** Offset of the node at `path` (or its key), or of the deepest node that exists on the way. */
function offsetOf(doc: Document.Parsed, path: JsonPath, at: 'value' | 'key'): number | undefined {
  let node: Node | null | undefined = doc.contents;
  let best = node?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    node = deref(doc, node);
    const segment = path[i];
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

function deref(doc: Document.Parsed, node: Node | null | undefined): Node | null | undefined {
  return isAlias(node) ? (node.resolve(doc) as Node | undefined) : node;
}

/** A string scalar at `path`, read from the parse tree so it works in broken documents too. */
function stringAt(doc: Document.Parsed, path: JsonPath): string | undefined {
  if (!isMap(doc.contents)) return undefined;
  const value: unknown = doc.getIn(path as Array<string | number>);
  return typeof value === 'string' ? value : undefined;
}

/** `spec.kprobes[0].selectors[0].matchActions[0].action` */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}
