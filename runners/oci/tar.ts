/**
 * A small POSIX tar writer (ustar headers, pax records for long names), enough for
 * container image layers and docker-archive files: directories, regular files (from
 * memory or streamed from a host file), and symlinks.
 *
 * Invariants: the same calls give the same bytes. Owners are 0:0 with no user or group
 * names, and every mtime is the one given to the writer (0 by default), so an image
 * built twice from the same tree has the same digests. Data is streamed, never held
 * whole in memory; the sha256 of everything written is kept as it goes (a layer's
 * diff_id is the digest of its uncompressed tar).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

const BLOCK = 512;
/** ustar's size field holds 11 octal digits: 8 GiB - 1. */
const MAX_SIZE = 0o77777777777;

type EntryType = 'file' | 'directory' | 'symlink';
const TYPEFLAG: Record<EntryType | 'pax', string> = { file: '0', symlink: '2', directory: '5', pax: 'x' };

export interface TarEntryOptions {
  /** Permission bits (and setuid/setgid/sticky); default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  mode?: number;
}

/** Writes a tar stream to an open file handle; call `end()` to write the trailer. */
export class TarWriter {
  private readonly hash: Hash = createHash('sha256');
  private written = 0;

  /** `mtime`: seconds since the epoch for every entry. */
  constructor(private readonly out: FileHandle, private readonly mtime = 0) {}

  /** Bytes written so far (after `end()`: the archive's size). */
  get bytes(): number {
    return this.written;
  }

  /** The sha256 (hex) of the bytes written so far; call after `end()` for the archive's digest. */
  digest(): string {
    return this.hash.copy().digest('hex');
  }

  async directory(path: string, opts: TarEntryOptions = {}): Promise<void> {
    await this.header(path.endsWith('/') ? path : `${path}/`, 'directory', 0, '', opts.mode ?? 0o755);
  }

  async symlink(path: string, target: string, opts: TarEntryOptions = {}): Promise<void> {
    await this.header(path, 'symlink', 0, target, opts.mode ?? 0o777);
  }

  /** A regular file from memory. */
  async file(path: string, content: string | Buffer, opts: TarEntryOptions = {}): Promise<void> {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    await this.header(path, 'file', data.length, '', opts.mode ?? 0o644);
    await this.write(data);
    await this.pad(data.length);
  }

  /** A regular file streamed from a host file of `size` bytes (a file that changes meanwhile is an error). */
  async fileFrom(path: string, hostFile: string, size: number, opts: TarEntryOptions = {}): Promise<void> {
    await this.header(path, 'file', size, '', opts.mode ?? 0o644);
    let copied = 0;
    for await (const chunk of createReadStream(hostFile)) {
      const buf = chunk as Buffer;
      copied += buf.length;
      if (copied > size) break;
      await this.write(buf);
    }
    if (copied !== size) throw new Error(`${hostFile} changed while it was archived (${copied} bytes, expected ${size})`);
    await this.pad(size);
  }

  /** The end-of-archive marker: two zero blocks. */
  async end(): Promise<void> {
    await this.write(Buffer.alloc(BLOCK * 2));
  }

  private async header(path: string, type: EntryType, size: number, linkname: string, mode: number): Promise<void> {
    if (path.length === 0 || path.startsWith('/') || path.split('/').includes('..')) {
      throw new Error(`tar entry "${path}": expected a relative path without ".."`);
    }
    if (size > MAX_SIZE) throw new Error(`tar entry "${path}" is ${size} bytes: larger than ustar can hold`);
    const pax: string[] = [];
    if (Buffer.byteLength(path) > 100) pax.push(paxRecord('path', path));
    if (Buffer.byteLength(linkname) > 100) pax.push(paxRecord('linkpath', linkname));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(''));
      await this.write(ustarHeader(`PaxHeaders/${shorten(path)}`, 'pax', body.length, '', 0o644, this.mtime));
      await this.write(body);
      await this.pad(body.length);
    }
    await this.write(ustarHeader(shorten(path), type, size, shorten(linkname), mode, this.mtime));
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.write(Buffer.alloc(BLOCK - rest));
  }

  private async write(buf: Buffer): Promise<void> {
    this.hash.update(buf);
    this.written += buf.length;
    let offset = 0;
    while (offset < buf.length) {
      const { bytesWritten } = await this.out.write(buf, offset, buf.length - offset);
      offset += bytesWritten;
    }
  }
}

/** A name cut to the 100 bytes of the ustar field (the pax record then holds the whole one). */
function shorten(name: string): string {
  const buf = Buffer.from(name);
  return buf.length <= 100 ? name : buf.subarray(0, 100).toString('latin1');
}

/** One pax record: "<length> <key>=<value>\n", the length counting itself. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let length = bodyBytes + 1;
  while (bodyBytes + String(length).length !== length) length = bodyBytes + String(length).length;
  return `${length}${body}`;
}

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as GNU tar writes them.
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function ustarHeader(name: string, type: EntryType | 'pax', size: number, linkname: string, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'latin1');
  h.write(octal(mode & 0o7777, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(mtime, 12), 136, 'latin1');
  h.write(' '.repeat(8), 148, 'latin1');
  h.write(TYPEFLAG[type], 156, 'latin1');
  h.write(linkname, 157, 100, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}
