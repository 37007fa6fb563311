/**
 * The lock file (`bpfgate.lock.json`): the exact Debian kernel packages a matrix ran on,
 * with the sha256 of the .deb and of the files bpfgate takes from it, so a matrix can be
 * rerun on the same bits. Reading goes through the shared positioned input, in stages:
 * read (lockfile-missing) -> strict JSON (lockfile-json) -> shape
 * (lockfile-schema, runners/qemu/schema/lock.schema.json). Each is an InputError, bad
 * input (exit 2), naming the file, line, column and field. Entries are written sorted by
 * name, so a relock that resolves the same versions writes the same bytes.
 */
import { writeFile } from 'node:fs/promises';
import { schemaValidator } from '../../core/schemas.js';
import { YamlInput } from '../../core/yaml-input.js';
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

/** Reads and validates a lock file. Unreadable, non-JSON or ill-shaped content is an InputError. */
export async function readLockFile(path: string): Promise<LockFile> {
  const input = await YamlInput.read(path, { missing: 'lockfile-missing', syntax: 'lockfile-json' }, 'lock file', { dialect: 'json' });
  return validateLockFile(input);
}

/** Parses lock file text (see `readLockFile`); `file` is only used in messages. */
export function parseLockFile(text: string, file: string): LockFile {
  return validateLockFile(YamlInput.parse(text, file, 'lockfile-json', { dialect: 'json' }));
}

function validateLockFile(input: YamlInput): LockFile {
  return input.validate(schemaValidator<LockFile>('lock'), 'lockfile-schema');
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
