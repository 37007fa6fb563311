/**
 * Defaults from a config file, so a repository can pin its schema, matrix and
 * baseline once. `--config FILE`, else `bpfgate.config.yaml` in the working
 * directory when present. Command-line flags win over the file. Paths in the file
 * are relative to the file.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument, LineCounter } from 'yaml';
import { InputError } from '../core/errors.js';

export interface ConfigFile {
  schema?: string;
  matrix?: string;
  policies?: string[];
  baseline?: string;
  lock?: string;
  suites?: string[];
  cells?: string;
  jobs?: number;
  out?: string;
}

const KEYS: Record<keyof ConfigFile, 'path' | 'paths' | 'string' | 'strings' | 'number'> = {
  schema: 'path', matrix: 'path', policies: 'paths', baseline: 'path', lock: 'path',
  suites: 'strings', cells: 'string', jobs: 'number', out: 'path',
};

export const DEFAULT_CONFIG = 'bpfgate.config.yaml';

export async function loadConfig(explicit?: string): Promise<ConfigFile> {
  const file = explicit ? resolve(explicit) : resolve(DEFAULT_CONFIG);
  if (!explicit && !existsSync(file)) return {};
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new InputError('config-missing', file, {}, `cannot read the config file: ${(cause as Error).message}`, cause);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const pos = lc.linePos(err.pos[0]);
    throw new InputError('config-yaml', file, { line: pos.line, column: pos.col }, `not valid YAML: ${err.message.split('\n')[0]}`);
  }
  const raw = (doc.toJS() ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InputError('config-invalid', file, { line: 1 }, 'expected a mapping of settings');
  const out: Record<string, unknown> = {};
  const base = dirname(file);
  const abs = (p: string) => (/^[a-z]+:\/\//.test(p) || isAbsolute(p) ? p : resolve(base, p));
  for (const [key, value] of Object.entries(raw)) {
    const kind = KEYS[key as keyof ConfigFile];
    const node = doc.get(key, true) as { range?: [number, number] } | undefined;
    const pos = node?.range ? lc.linePos(node.range[0]) : { line: 1, col: 1 };
    const fail = (expected: string) => {
      throw new InputError('config-invalid', file, { line: pos.line, column: pos.col }, `${key}: expected ${expected}`);
    };
    if (!kind) throw new InputError('config-invalid', file, { line: pos.line, column: pos.col }, `unknown setting "${key}"; expected one of ${Object.keys(KEYS).join(', ')}`);
    if (kind === 'number') {
      if (!Number.isInteger(value) || (value as number) < 1) fail('a positive whole number');
      out[key] = value;
    } else if (kind === 'path' || kind === 'string') {
      if (typeof value !== 'string') fail('a string');
      out[key] = kind === 'path' ? abs(value as string) : value;
    } else {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) fail('a list of strings');
      out[key] = kind === 'paths' ? (list as string[]).map(abs) : list;
    }
  }
  return out as ConfigFile;
}
