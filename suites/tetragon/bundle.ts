/**
 * A Tetragon release bundle, in the layout of its release tarballs
 * (`tetragon-vX.Y.Z-<arch>.tar.gz` holding `tetragon-vX.Y.Z-<arch>/usr/local/bin/{tetragon,tetra}`,
 * `usr/local/lib/tetragon/bpf/*.o` and `usr/local/lib/tetragon/tetragon.conf.d/`).
 * Given as a directory, a tarball, or a URL downloaded once and cached by its sha256.
 * The bundle's arch comes from the tetragon binary itself (its ELF machine), so a
 * renamed tarball cannot fool it; a bundle for another arch than the cell is an error.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../../core/cache.js';
import { downloadToCache, httpTransport, sha256File } from '../../core/download.js';
import { InputError } from '../../core/errors.js';
import type { Arch } from '../../matrix/cell.js';

export interface TetragonBundle {
  /** Where it came from, as given. */
  source: string;
  arch: Arch;
  /** The directory whose `usr/` is laid over the guest's root. */
  root: string;
  version: string;
  tetragon: string;
  tetra: string;
  bpfDir: string;
  bpfObjects: string[];
}

const ELF_MACHINE: Record<number, Arch> = { 62: 'x86_64', 183: 'arm64' };

async function elfArch(file: string): Promise<Arch | undefined> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(20);
    await handle.read(header, 0, 20, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return ELF_MACHINE[header.readUInt16LE(18)];
  } finally {
    await handle.close();
  }
}

/** The directory holding `usr/local/bin/tetragon`: the given one, or its single `tetragon-v*` child. */
async function findRoot(dir: string): Promise<string | undefined> {
  if (existsSync(join(dir, 'usr', 'local', 'bin', 'tetragon'))) return dir;
  for (const entry of await readdir(dir)) {
    if (existsSync(join(dir, entry, 'usr', 'local', 'bin', 'tetragon'))) return join(dir, entry);
  }
  return undefined;
}

/** A bundle URL, downloaded once into the cache (core/download.ts: streamed, retried, renamed into place). */
async function download(url: string): Promise<string> {
  const name = `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${basename(new URL(url).pathname)}`;
  return downloadToCache({ dir: await cacheDir('tetragon', 'downloads'), name, what: `the Tetragon bundle ${url}`, transport: httpTransport(url) });
}

/** A tarball is unpacked once into the cache, under its sha256. */
async function unpack(tarball: string): Promise<string> {
  const digest = await sha256File(tarball);
  const dir = join(await cacheDir('tetragon', 'bundles'), digest);
  if (existsSync(join(dir, '.complete'))) return dir;
  await mkdir(dir, { recursive: true });
  const r = await execa('tar', ['-xzf', tarball, '-C', dir], { reject: false });
  if (r.exitCode !== 0) throw new InputError('tetragon-bundle', tarball, {}, `not a Tetragon release tarball (tar -xzf failed: ${r.stderr.trim()})`);
  await writeFile(join(dir, '.complete'), tarball);
  return dir;
}

export async function loadBundle(source: string): Promise<TetragonBundle> {
  let local = source;
  if (/^https?:\/\//.test(source)) local = await download(source);
  let info;
  try {
    info = await stat(local);
  } catch {
    throw new InputError('tetragon-bundle', source, {}, 'no such file or directory: expected a Tetragon release tarball, its unpacked directory, or a URL');
  }
  const dir = info.isDirectory() ? local : await unpack(local);
  const root = await findRoot(dir);
  if (!root) {
    throw new InputError('tetragon-bundle', source, {}, 'expected the release layout: usr/local/bin/tetragon (under tetragon-vX.Y.Z-<arch>/)');
  }
  const tetragon = join(root, 'usr', 'local', 'bin', 'tetragon');
  const tetra = join(root, 'usr', 'local', 'bin', 'tetra');
  const bpfDir = join(root, 'usr', 'local', 'lib', 'tetragon', 'bpf');
  const arch = await elfArch(tetragon);
  if (!arch) throw new InputError('tetragon-bundle', tetragon, {}, 'expected an x86_64 or arm64 ELF executable');
  if (!existsSync(tetra)) throw new InputError('tetragon-bundle', source, {}, `expected ${relative(dir, tetra)} beside tetragon`);
  const bpfObjects = existsSync(bpfDir) ? (await readdir(bpfDir)).filter((f) => f.endsWith('.o')).sort() : [];
  if (bpfObjects.length === 0) throw new InputError('tetragon-bundle', source, {}, `expected BPF objects in ${relative(dir, bpfDir)}`);
  const version = basename(root).match(/^tetragon-(v[^-]+)/)?.[1] ?? 'unknown';
  return { source, arch, root, version, tetragon, tetra, bpfDir, bpfObjects };
}

/** Pick, from the bundles given, the one for this arch; undefined when none is. */
export function bundleFor(bundles: readonly TetragonBundle[], arch: Arch): TetragonBundle | undefined {
  return bundles.find((b) => b.arch === arch);
}
