/**
 * Reading policy files: paths (files or directories, walked recursively for .yaml/.yml)
 * become YAML documents with positions, read through the shared positioned input
 * (core/yaml-input.ts) in its Kubernetes dialect: the YAML 1.1 rules of Kubernetes' own
 * decoder (go-yaml v2), so `yes`/`on` are booleans and `0777` is octal, but times and
 * timestamps stay strings as they do on their way to JSON.
 *
 * Every file remembers the `--policies` path it was found under (its root) and its path
 * relative to that root (`relPath`, `/`-separated, never with `..`): subjects and reports
 * name a file by it, so they do not depend on the working directory. A file named
 * directly is relative to its own directory: its relPath is its base name.
 *
 * Invariants: files come in a stable sorted order; a file that is not valid YAML yields a
 * `yaml-invalid` problem at the error's position and never throws; empty documents are
 * skipped; a path that does not exist is an InputError.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { type FieldPath, type Position, YamlInput, formatPath as formatFieldPath } from '../core/yaml-input.js';
import type { PolicyOrigin, PolicyProblem } from './model.js';

/** A path into a JSON document: object keys and array indexes. */
export type JsonPath = FieldPath;

export type { PolicyOrigin, Position };

/** A policy file found under a root. */
export interface PolicyFile extends PolicyOrigin {
  /** The path to read: `root` joined with `relPath`. */
  file: string;
}

/** One YAML document of one file. */
export interface SourceDocument extends PolicyOrigin {
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
  return (await findPolicyFiles(paths)).map((f) => f.file);
}

/**
 * Files named by `paths` with the root each was found under; sorted by path, without
 * duplicates (a file under two roots keeps the first root that names it).
 */
export async function findPolicyFiles(paths: readonly string[]): Promise<PolicyFile[]> {
  const files = new Map<string, PolicyFile>();
  const seenDirs = new Set<string>();
  const add = (found: PolicyFile) => {
    const key = resolve(found.file);
    if (!files.has(key)) files.set(key, found);
  };
  for (const path of paths) {
    const info = await stat(path).catch((cause: unknown) => {
      throw new InputError('policy-path-missing', path, {}, 'no such file or directory', cause);
    });
    if (info.isDirectory()) await walk(path, '', add, seenDirs);
    // A file named explicitly is read whatever its extension: the user asked for it.
    else add({ file: path, root: dirname(path), relPath: basename(path) });
  }
  return [...files.values()].sort((a, b) => byCodeUnits(a.file, b.file));
}

async function walk(root: string, rel: string, add: (f: PolicyFile) => void, seenDirs: Set<string>): Promise<void> {
  const dir = rel === '' ? root : join(root, rel);
  // Symlinked directories are followed once, so a link cycle cannot loop forever.
  const real = await realpath(dir);
  if (seenDirs.has(real)) return;
  seenDirs.add(real);
  const names = (await readdir(dir)).sort(byCodeUnits);
  for (const name of names) {
    // relPath is built from the names walked, so it never climbs out of the root.
    const relPath = rel === '' ? name : `${rel}/${name}`;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined); // a dangling link is not a policy
    if (info?.isDirectory()) await walk(root, relPath, add, seenDirs);
    else if (info?.isFile() && POLICY_FILE.test(extname(name))) add({ file: path, root, relPath });
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every non-empty document of every file under `paths`, in file order. */
export async function loadDocuments(paths: readonly string[]): Promise<SourceDocument[]> {
  const documents: SourceDocument[] = [];
  for (const found of await findPolicyFiles(paths)) {
    const text = await readFile(found.file, 'utf8').catch((cause: unknown) => {
      throw new InputError('policy-unreadable', found.file, {}, `cannot read: ${(cause as Error).message}`, cause);
    });
    documents.push(...parseDocuments(found.file, text, found));
  }
  return documents;
}

/**
 * The non-empty documents of one file's text. Never throws on bad YAML. `origin` defaults
 * to the file's own directory as root.
 */
export function parseDocuments(file: string, text: string, origin: PolicyOrigin = { root: dirname(file), relPath: basename(file) }): SourceDocument[] {
  return YamlInput.parseAll(text, file, { dialect: 'kubernetes' }).map((input) => {
    const source: SourceDocument = {
      file,
      root: origin.root,
      relPath: origin.relPath,
      docIndex: input.docIndex,
      ...input.start,
      value: input.value,
      kind: input.stringAt(['kind']),
      name: input.stringAt(['metadata', 'name']),
      locate: (path, at = 'value') => input.locate(path, at),
    };
    if (input.problem) {
      const { line, column, message, code } = input.problem;
      source.yamlProblem = { file, line, column, reason: 'yaml-invalid', path: '', message: `${message} (${code})`, relPath: origin.relPath };
    }
    return source;
  });
}

/** `spec.kprobes[0].selectors[0].matchActions[0].action`; the empty path is "". */
export function formatPath(path: JsonPath): string {
  return formatFieldPath(path, '');
}
