/**
 * The one way downloaded bytes enter bpfgate's cache: `downloadToCache` asks a transport
 * (an HTTP(S) stream, apt's downloader) to write a temp file beside the target, checks its
 * sha256 when one is known, and renames it into place.
 *
 * Invariants:
 * - A file in the cache is complete: the temp file is renamed only after the transport
 *   finished and the hash matched; a failure leaves nothing behind.
 * - Nothing is held in memory whole: transports stream to disk and the hash is streamed.
 * - Transient failures (network errors, HTTP 5xx/408/429, a broken stream) are retried
 *   with backoff; a `PermanentDownloadError` (HTTP 404, a package apt does not know) and a
 *   sha256 mismatch are not. The final failure is an InfraError `infra-download` naming what
 *   was downloaded and why it failed; an InfraError a transport throws passes as it is.
 * - Parallel requests for the same target in one process share one download.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { InfraError } from './errors.js';

/** Writes the downloaded bytes to `tempFile` (a new path in the target's directory). */
export type Transport = (tempFile: string) => Promise<void>;

/** A failure that trying again cannot fix. */
export class PermanentDownloadError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PermanentDownloadError';
  }
}

export interface DownloadRequest {
  /** The cache directory the file goes into (it exists: see core/cache.ts). */
  dir: string;
  /** The file's name in `dir`. */
  name: string;
  /** What is downloaded, for messages: a URL, or `package version (arch)`. */
  what: string;
  /** The expected sha256 (hex). Checked before the file enters the cache, and on a cached copy. */
  sha256?: string;
  transport: Transport;
  /** Tries in all (default 4). */
  attempts?: number;
  /** The wait before the first retry (default 500 ms); doubled for each further one. */
  backoffMs?: number;
  /** Retries and their causes, one line each. */
  onLog?: (line: string) => void;
}

const inFlight = new Map<string, Promise<string>>();

/**
 * The path of `req.name` in `req.dir`: the cached copy when there is one (its sha256 checked
 * when known; without a known hash any non-empty file will do), else downloaded now.
 */
export function downloadToCache(req: DownloadRequest): Promise<string> {
  const target = join(req.dir, req.name);
  let pending = inFlight.get(target);
  if (!pending) {
    pending = fetchInto(target, req).finally(() => inFlight.delete(target));
    inFlight.set(target, pending);
  }
  return pending;
}

async function fetchInto(target: string, req: DownloadRequest): Promise<string> {
  if (await usableCopy(target, req.sha256)) return target;
  const attempts = Math.max(1, req.attempts ?? 4);
  let wait = req.backoffMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    // Dot-prefixed and unique: never taken for the file, never shared with another process.
    const temp = join(req.dir, `.${req.name}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
    try {
      await req.transport(temp);
      if (req.sha256 !== undefined) {
        const got = await sha256File(temp).catch(() => 'nothing (the transport wrote no file)');
        if (got !== req.sha256) {
          throw new PermanentDownloadError(`sha256 ${got} does not match the expected ${req.sha256}`);
        }
      }
      await rename(temp, target);
      return target;
    } catch (err) {
      await rm(temp, { force: true });
      if (err instanceof InfraError) throw err;
      const cause = describe(err);
      if (err instanceof PermanentDownloadError || attempt >= attempts) {
        const tries = attempt > 1 ? ` (${attempt} attempts)` : '';
        throw new InfraError('infra-download', `cannot download ${req.what}${tries}: ${cause}`, err);
      }
      req.onLog?.(`warn: downloading ${req.what} failed (${cause}); trying again in ${wait < 1000 ? `${wait} ms` : `${(wait / 1000).toFixed(1)} s`}`);
      await new Promise((r) => setTimeout(r, wait));
      wait *= 2;
    }
  }
}

/** Whether a cached copy can be used: its hash matches, or (no hash known) it is a non-empty file. */
async function usableCopy(target: string, sha256: string | undefined): Promise<boolean> {
  const info = await stat(target).catch(() => undefined);
  if (!info?.isFile() || info.size === 0) return false;
  if (sha256 === undefined || (await sha256File(target)) === sha256) return true;
  // Not what the index says (a file from before a republish): replaced by the download.
  await rm(target, { force: true });
  return false;
}

/** HTTP statuses worth another try. */
const TRANSIENT_STATUS = new Set([408, 425, 429]);

/**
 * An HTTP(S) transport: the global fetch (redirects followed), its body piped to the temp
 * file. Network errors, 5xx, 408 and 429 are transient; other statuses are permanent.
 */
export function httpTransport(url: string): Transport {
  return async (tempFile) => {
    let response: Response;
    try {
      response = await fetch(url, { redirect: 'follow' });
    } catch (cause) {
      throw new Error(describe(cause), { cause });
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
      if (response.status >= 500 || TRANSIENT_STATUS.has(response.status)) throw new Error(status);
      throw new PermanentDownloadError(status);
    }
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(tempFile));
  };
}

/** The sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** fetch() says "fetch failed" and keeps the reason (ECONNREFUSED, ENOTFOUND, ...) in its cause. */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
  return cause && !message.includes(cause) ? `${message}: ${cause}` : message;
}
