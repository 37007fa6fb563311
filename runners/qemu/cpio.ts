/**
 * newc cpio archives (the initramfs format), gzip'd, from a staged directory.
 * GNU cpio writes the archive (no maintained npm package does newc); node's zlib
 * compresses it.
 *
 * Invariants: the same staged tree gives the same bytes: names are sorted (a parent
 * always precedes its children), owners are 0:0, inode and device numbers are
 * renumbered (`--reproducible`), every mtime is FIXED_MTIME, and the gzip header
 * carries no name or time. The output file appears only when complete.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, lutimes, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { InfraError } from '../../core/errors.js';
import { sha256File } from './apt.js';

/** The mtime of every archived entry (seconds since the epoch). */
export const FIXED_MTIME = 0;

/** Every path under `dir`, relative, sorted by bytes (parents before children). */
export async function stagedEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const ent of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? ent.name : `${rel}/${ent.name}`;
      out.push(path);
      if (ent.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/**
 * Packs `dir` into a gzip'd newc archive at `outFile`. Sets every entry's mtime to
 * FIXED_MTIME first (the staged tree is the caller's scratch copy).
 */
/** `gzipLevel: 0` writes a plain archive: the kernel unpacks it without decompressing (large overlays). */
export async function packDirectory(dir: string, outFile: string, opts: { gzipLevel?: number } = {}): Promise<{ bytes: number; sha256: string; entries: string[] }> {
  const entries = await stagedEntries(dir);
  // Children before parents: touching a child would change its directory's mtime again.
  for (const rel of [...entries].reverse()) await lutimes(join(dir, rel), FIXED_MTIME, FIXED_MTIME);
  const tmp = `${outFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const child = execa('cpio', ['-o', '-H', 'newc', '-0', '--reproducible', '-R', '0:0', '--quiet'], {
      cwd: dir,
      input: entries.map((e) => `${e}\0`).join(''),
      buffer: { stdout: false },
      encoding: 'buffer',
    });
    const stdout = child.stdout;
    if (!stdout) throw new Error('cpio has no stdout');
    const write = opts.gzipLevel === 0
      ? pipeline(stdout, createWriteStream(tmp))
      : pipeline(stdout, createGzip({ level: opts.gzipLevel ?? 6 }), createWriteStream(tmp));
    await Promise.all([write, child]);
    await rename(tmp, outFile);
  } catch (err) {
    await rm(tmp, { force: true });
    if ((err as { code?: string }).code === 'ENOENT') throw new InfraError('infra-tool-missing', 'cpio is not installed (apt-get install cpio)', err);
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new InfraError('infra-guest-build', `cpio could not pack ${dir}: ${stderr || (err as Error).message}`, err);
  }
  return { bytes: (await lstat(outFile)).size, sha256: await sha256File(outFile), entries };
}

/** One entry of an archive as `cpio -tv` shows it. */
export interface ArchiveEntry {
  path: string;
  /** `-rwxr-xr-x`, `lrwxrwxrwx`, `drwxr-xr-x`, ... */
  mode: string;
  /** For symlinks, the target. */
  linkTarget?: string;
}

/** The entries of the first archive in a gzip'd newc file (what the kernel would unpack first). */
export async function listArchive(file: string): Promise<ArchiveEntry[]> {
  // Unpacked in memory (images are a few MB): cpio stops reading at the trailer, and a
  // stream piped into it would then fail with EPIPE.
  const archive = gunzipSync(await readFile(file));
  try {
    const result = await execa('cpio', ['-t', '-v', '--quiet'], { input: archive, encoding: 'utf8' });
    return result.stdout
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .map(parseListLine);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw new InfraError('infra-tool-missing', 'cpio is not installed (apt-get install cpio)', err);
    throw err;
  }
}

function parseListLine(line: string): ArchiveEntry {
  // -rwxr-xr-x   1 root     root      1234 Jan  1  1970 bin/busybox
  const m = /^(\S{10})\s+\d+\s+\S+\s+\S+\s+\d+\s+\S+\s+\d+\s+\S+\s+(.*)$/.exec(line);
  if (!m) return { path: line.trim(), mode: '' };
  const mode = m[1] ?? '';
  const rest = m[2] ?? '';
  if (mode.startsWith('l')) {
    const [path, target] = rest.split(' -> ');
    return { path: path ?? rest, mode, linkTarget: target };
  }
  return { path: rest, mode };
}
