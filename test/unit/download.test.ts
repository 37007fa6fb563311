/**
 * core/download.ts against a real HTTP server on 127.0.0.1: what enters the cache, when it
 * is tried again, that a large body is streamed to disk, and that parallel requests for one
 * file share one download.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadToCache, httpTransport, sha256File } from '../../core/download.js';
import { InfraError } from '../../core/errors.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-download-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const BODY = Buffer.from('a small file\n');

/** 64 MiB, sent chunk by chunk from four 1 MiB buffers. */
const LARGE_CHUNKS = 64;
const CHUNKS = [1, 2, 3, 4].map((n) => Buffer.alloc(1 << 20, n));
const chunk = (i: number) => CHUNKS[i % CHUNKS.length] as Buffer;
const largeSha = (() => {
  const h = createHash('sha256');
  for (let i = 0; i < LARGE_CHUNKS; i++) h.update(chunk(i));
  return h.digest('hex');
})();

/** Resolved when the test sees the first half of /large in the cache directory's temp file. */
let halfSeen: () => void = () => undefined;
const halfOnDisk = new Promise<void>((resolve) => (halfSeen = resolve));

let server: Server;
let base: string;
const hits = new Map<string, number>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    if (path === '/file') {
      res.writeHead(200).end(BODY);
    } else if (path === '/flaky') {
      // Fails twice, then answers.
      if (n <= 2) res.writeHead(503).end('busy');
      else res.writeHead(200).end(BODY);
    } else if (path === '/slow') {
      setTimeout(() => res.writeHead(200).end(BODY), 200);
    } else if (path === '/large') {
      // The first half, then a pause until the test has seen it on disk (or 10 s passed).
      res.writeHead(200, { 'content-length': String(LARGE_CHUNKS << 20) });
      let i = 0;
      const send = (upTo: number, then: () => void) => {
        while (i < upTo) {
          if (!res.write(chunk(i++))) return void res.once('drain', () => send(upTo, then));
        }
        then();
      };
      send(LARGE_CHUNKS / 2, () => {
        void Promise.race([halfOnDisk, new Promise((r) => setTimeout(r, 10_000))]).then(() => send(LARGE_CHUNKS, () => res.end()));
      });
    } else {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((done) => server.close(done)));

function cache(name: string): string {
  return mkdtempSync(join(root, `${name}-`));
}

describe('downloadToCache over HTTP', () => {
  it('puts the file into the cache under its name, and serves it from there afterwards', async () => {
    const dir = cache('plain');
    const url = `${base}/file`;
    const before = hits.get('/file') ?? 0;
    const path = await downloadToCache({ dir, name: 'f.txt', what: url, sha256: sha(BODY), transport: httpTransport(url) });
    expect(path).toBe(join(dir, 'f.txt'));
    expect(readFileSync(path)).toEqual(BODY);
    expect(readdirSync(dir)).toEqual(['f.txt']);
    await downloadToCache({ dir, name: 'f.txt', what: url, sha256: sha(BODY), transport: httpTransport(url) });
    expect(hits.get('/file')).toBe(before + 1);
  });

  it('refuses a sha256 mismatch and leaves nothing in the cache', async () => {
    const dir = cache('mismatch');
    const url = `${base}/file`;
    const err = await downloadToCache({ dir, name: 'f.txt', what: url, sha256: '0'.repeat(64), transport: httpTransport(url), backoffMs: 1 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toBe(`cannot download ${url}: sha256 ${sha(BODY)} does not match the expected ${'0'.repeat(64)}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('replaces a cached copy whose sha256 is not the expected one', async () => {
    const dir = cache('stale');
    writeFileSync(join(dir, 'f.txt'), 'something else');
    const url = `${base}/file`;
    const path = await downloadToCache({ dir, name: 'f.txt', what: url, sha256: sha(BODY), transport: httpTransport(url) });
    expect(readFileSync(path)).toEqual(BODY);
  });

  it('tries again after transient failures, with backoff and a line for each retry', async () => {
    const dir = cache('flaky');
    const url = `${base}/flaky`;
    const log: string[] = [];
    const started = Date.now();
    const path = await downloadToCache({ dir, name: 'f.txt', what: url, transport: httpTransport(url), backoffMs: 50, onLog: (l) => log.push(l) });
    expect(readFileSync(path)).toEqual(BODY);
    expect(hits.get('/flaky')).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150); // 50 ms, then 100 ms
    expect(log).toEqual([
      `warn: downloading ${url} failed (HTTP 503 Service Unavailable); trying again in 50 ms`,
      `warn: downloading ${url} failed (HTTP 503 Service Unavailable); trying again in 100 ms`,
    ]);
    expect(readdirSync(dir)).toEqual(['f.txt']);
  });

  it('gives up after the last attempt, and at once on a permanent failure (404)', async () => {
    const dir = cache('fail');
    hits.delete('/missing');
    const err404 = await downloadToCache({ dir, name: 'a', what: `${base}/missing`, transport: httpTransport(`${base}/missing`), backoffMs: 1 }).catch((e: unknown) => e);
    expect((err404 as InfraError).message).toBe(`cannot download ${base}/missing: HTTP 404 Not Found`);
    expect(hits.get('/missing')).toBe(1);
    // A port nothing listens on any more: a network error, tried `attempts` times.
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((done) => closed.close(done));
    const refused = `http://127.0.0.1:${port}/x`;
    const errNet = await downloadToCache({ dir, name: 'b', what: refused, transport: httpTransport(refused), attempts: 2, backoffMs: 1 }).catch((e: unknown) => e);
    expect(errNet).toBeInstanceOf(InfraError);
    expect((errNet as InfraError).message).toMatch(new RegExp(`^cannot download ${refused.replace(/[.]/g, '\\.')} \\(2 attempts\\): fetch failed: .*ECONNREFUSED`));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('streams a large body to disk: half of it is in the temp file while the rest is still to come', async () => {
    const dir = cache('large');
    const url = `${base}/large`;
    let sawHalf = false;
    const watcher = setInterval(() => {
      for (const name of readdirSync(dir)) {
        if (name.startsWith('.large.bin.') && statSync(join(dir, name), { throwIfNoEntry: false })?.size === (LARGE_CHUNKS << 20) / 2) {
          sawHalf = true;
          halfSeen();
        }
      }
    }, 10);
    try {
      const path = await downloadToCache({ dir, name: 'large.bin', what: url, sha256: largeSha, transport: httpTransport(url) });
      expect(await sha256File(path)).toBe(largeSha);
      expect(readdirSync(dir)).toEqual(['large.bin']);
    } finally {
      clearInterval(watcher);
    }
    // A transport that buffered the body would write nothing before the server sent it all.
    expect(sawHalf).toBe(true);
  });

  it('shares one download between parallel requests for the same file', async () => {
    const dir = cache('parallel');
    const url = `${base}/slow`;
    const paths = await Promise.all(
      Array.from({ length: 5 }, () => downloadToCache({ dir, name: 'f.txt', what: url, sha256: sha(BODY), transport: httpTransport(url) })),
    );
    expect(new Set(paths)).toEqual(new Set([join(dir, 'f.txt')]));
    expect(hits.get('/slow')).toBe(1);
  });

  it('passes an InfraError from the transport as it is, without retrying', async () => {
    const dir = cache('infra');
    let calls = 0;
    const err = await downloadToCache({
      dir,
      name: 'x',
      what: 'x',
      transport: async () => {
        calls++;
        throw new InfraError('infra-tool-missing', 'apt-get is not installed');
      },
    }).catch((e: unknown) => e);
    expect([(err as InfraError).code, calls]).toEqual(['infra-tool-missing', 1]);
  });
});
