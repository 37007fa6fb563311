/**
 * The lock file (`bpfgate.lock.json`): the exact Debian kernel packages a matrix ran on,
 * with the sha256 of the .deb and of the files bpfgate takes from it, so a matrix can be
 * rerun on the same bits. Reading validates the shape (an InputError names the file, the
 * line and the field); entries are written sorted by name, so a relock that resolves the
 * same versions writes the same bytes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { InputError } from '../../core/errors.js';
import type { KernelRef } from '../../matrix/cell.js';

export const DEFAULT_LOCK_FILE = 'bpfgate.lock.json';
export const LOCKFILE_VERSION = 1;

/** One locked Debian kernel. */
export interface LockedKernel {
  /** Catalogue name, e.g. `trixie/linux-image-arm64-16k`. */
  name: string;
  suite: string;
  debArch: 'amd64' | 'arm64';
  /** The package the matrix names (often a metapackage), e.g. `linux-image-arm64-16k`. */
  requested: string;
  /** The real image package, e.g. `linux-image-6.12.117+deb13-arm64-16k`. */
  package: string;
  version: string;
  /** Pool path in the archive. */
  filename: string;
  /** sha256 of the .deb. */
  sha256: string;
  imageSha256: string;
  configSha256: string;
}

export interface LockFile {
  lockfileVersion: typeof LOCKFILE_VERSION;
  kernels: LockedKernel[];
}

const SHA = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const TEXT = { type: 'string', minLength: 1 } as const;

const LOCK_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['lockfileVersion', 'kernels'],
  properties: {
    lockfileVersion: { const: LOCKFILE_VERSION },
    kernels: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'suite', 'debArch', 'requested', 'package', 'version', 'filename', 'sha256', 'imageSha256', 'configSha256'],
        properties: {
          name: TEXT,
          suite: TEXT,
          debArch: { enum: ['amd64', 'arm64'] },
          requested: TEXT,
          package: TEXT,
          version: TEXT,
          filename: TEXT,
          sha256: SHA,
          imageSha256: SHA,
          configSha256: SHA,
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: false }).compile<LockFile>(LOCK_SCHEMA);

/** Reads and validates a lock file. Unreadable, non-JSON or ill-shaped content is an InputError. */
export async function readLockFile(path: string): Promise<LockFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new InputError('lockfile-invalid', path, {}, `cannot read the lock file: ${(err as Error).message}`, err);
  }
  return parseLockFile(text, path);
}

/** Parses lock file text (see `readLockFile`); `file` is only used in messages. */
export function parseLockFile(text: string, file: string): LockFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new InputError('lockfile-invalid', file, jsonErrorPosition(text, err as Error), `not valid JSON: ${(err as Error).message}`, err);
  }
  if (!validate(data)) {
    const e = validate.errors?.[0] as ErrorObject | undefined;
    const field = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(document)';
    throw new InputError(
      'lockfile-invalid',
      file,
      fieldPosition(text, e?.instancePath ?? ''),
      `${field}: ${e?.message ?? 'does not match the lock file format'} (expected a bpfgate lock file, version ${LOCKFILE_VERSION})`,
    );
  }
  return data;
}

/** Writes the lock file, entries sorted by name, with a final newline. */
export async function writeLockFile(path: string, lock: LockFile): Promise<void> {
  await writeFile(path, formatLockFile(lock));
}

export function formatLockFile(lock: LockFile): string {
  const kernels = [...lock.kernels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return `${JSON.stringify({ lockfileVersion: LOCKFILE_VERSION, kernels }, null, 2)}\n`;
}

/** The locked entry of a Debian kernel ref, matched by suite, requested package and arch. */
export function findLocked(lock: LockFile | undefined, ref: KernelRef): LockedKernel | undefined {
  if (!lock || ref.kind !== 'debian') return undefined;
  return lock.kernels.find((k) => k.suite === ref.suite && k.requested === ref.package && k.debArch === ref.debArch);
}

/**
 * Where JSON.parse failed: its "position N" when the message has one (not every V8
 * message does), else the first error the YAML parser (a JSON superset) positions.
 */
function jsonErrorPosition(text: string, err: Error): { line?: number; column?: number } {
  const pos = /position (\d+)/.exec(err.message);
  if (pos) return lineColumn(text, Number(pos[1]));
  const linePos = parseDocument(text).errors[0]?.linePos?.[0];
  return linePos ? { line: linePos.line, column: linePos.col } : {};
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** A best-effort position for a JSON pointer: the line of the last key it names. */
function fieldPosition(text: string, pointer: string): { line?: number; column?: number } {
  const parts = pointer.split('/').filter((p) => p.length > 0);
  let offset = 0;
  for (const part of parts) {
    if (/^\d+$/.test(part)) {
      // Array index: skip to the n-th object opening after the current offset.
      let n = Number(part);
      let at = text.indexOf('{', offset + 1);
      while (n > 0 && at >= 0) {
        at = text.indexOf('{', at + 1);
        n--;
      }
      if (at < 0) break;
      offset = at;
    } else {
      const at = text.indexOf(`"${part}"`, offset);
      if (at < 0) break;
      offset = at;
    }
  }
  return parts.length === 0 ? {} : lineColumn(text, offset);
}
