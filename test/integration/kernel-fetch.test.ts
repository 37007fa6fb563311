/**
 * Fetches the five kernels of the default matrix for real, through the private apt and
 * the machine's Debian mirror (cached in ~/.cache/bpfgate between runs), and checks
 * what the cache promises: real packages behind the metapackages, page sizes read from
 * the image headers, content addressing, warm fetches from the cache, and the lock file.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import { DEFAULT_KERNELS, type KernelEntry } from '../../matrix/kernel-catalogue.js';
import { kernelsCommand } from '../../cli/commands/kernels.js';
import { privateApt } from '../../runners/qemu/apt.js';
import { extractBoot, fetchKernel, readKernelConfig, type KernelArtifact } from '../../runners/qemu/kernel-cache.js';
import { readLockFile, type LockFile } from '../../runners/qemu/lockfile.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-kernel-fetch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fetched = new Map<string, KernelArtifact>();
let firstFetchMs = 0;

beforeAll(async () => {
  const started = Date.now();
  for (const e of DEFAULT_KERNELS) fetched.set(e.name, await fetchKernel(e.ref, { onProgress: (l) => console.info(`  ${l}`) }));
  firstFetchMs = Date.now() - started;
  const how = [...fetched.values()].map((a) => a.origin).join(',');
  console.info(`fetch of the five default kernels: ${(firstFetchMs / 1000).toFixed(1)}s (${how})`);
});

const artifact = (e: KernelEntry) => fetched.get(e.name) as KernelArtifact;
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A stream that keeps what is written to it. */
function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return Object.assign(w, { text: () => chunks.join('') });
}

describe('fetching the default kernels', () => {
  it('resolves each metapackage to the real image package of its series', () => {
    const series: Record<string, RegExp> = {
      'bookworm/linux-image-amd64': /^linux-image-6\.1\.0-\d+-amd64$/,
      'trixie/linux-image-amd64': /^linux-image-6\.12\.\d+\+deb13-amd64$/,
      'bookworm/linux-image-arm64': /^linux-image-6\.1\.0-\d+-arm64$/,
      'trixie/linux-image-arm64': /^linux-image-6\.12\.\d+\+deb13-arm64$/,
      'trixie/linux-image-arm64-16k': /^linux-image-6\.12\.\d+\+deb13-arm64-16k$/,
    };
    for (const e of DEFAULT_KERNELS) {
      const a = artifact(e);
      expect(a.package, e.name).toMatch(series[e.name] as RegExp);
      expect(a.version, e.name).toMatch(new RegExp(`^${e.label.replace('.', '\\.')}\\.\\d+-\\d+$`));
      expect(a.release).toBe((a.package as string).slice('linux-image-'.length));
      expect(a.suite?.startsWith(e.ref.kind === 'debian' ? e.ref.suite : '?')).toBe(true);
    }
  });

  it('reads the arch and page size from each image header: 16K for arm64-16k, 4K for the others', () => {
    const seen = DEFAULT_KERNELS.map((e) => [e.name, artifact(e).arch, artifact(e).pageSizeKiB, artifact(e).format]);
    expect(seen).toEqual([
      ['bookworm/linux-image-amd64', 'x86_64', 4, 'bzImage'],
      ['trixie/linux-image-amd64', 'x86_64', 4, 'bzImage'],
      ['bookworm/linux-image-arm64', 'arm64', 4, 'arm64-image'],
      ['trixie/linux-image-arm64', 'arm64', 4, 'arm64-image'],
      ['trixie/linux-image-arm64-16k', 'arm64', 16, 'arm64-image'],
    ]);
  });

  it('stores the image and config by the .deb sha256, with their own sha256 recorded', async () => {
    for (const e of DEFAULT_KERNELS) {
      const a = artifact(e);
      expect(a.image).toContain(`/kernels/${a.debSha256}/boot/vmlinuz-${a.release}`);
      expect(a.config).toContain(`/kernels/${a.debSha256}/boot/config-${a.release}`);
      expect(sha256(a.image)).toBe(a.imageSha256);
      expect(sha256(a.config)).toBe(a.configSha256);
      expect((await readKernelConfig(a.config)).get('CONFIG_BPF_SYSCALL')).toBe('y');
    }
  });

  it('fetches again from the cache, without downloading, in well under a second per kernel', async () => {
    const started = Date.now();
    const again = await Promise.all(DEFAULT_KERNELS.map((e) => fetchKernel(e.ref)));
    const warmMs = Date.now() - started;
    console.info(`warm fetch of the five default kernels: ${warmMs} ms`);
    expect(again.map((a) => a.origin)).toEqual(['cache', 'cache', 'cache', 'cache', 'cache']);
    expect(again.map((a) => a.imageSha256)).toEqual(DEFAULT_KERNELS.map((e) => artifact(e).imageSha256));
    expect(warmMs).toBeLessThan(5000);
  });
});

describe('extracting ./boot', () => {
  it('refuses a package that holds no kernel, as infra-kernel-invalid naming the .deb', async () => {
    const apt = await privateApt();
    const deb = await apt.download(await apt.resolve('busybox-static', 'bookworm', 'amd64'));
    const into = mkdtempSync(join(dir, 'extract-'));
    const err = await extractBoot(deb, into, 'busybox').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-kernel-invalid');
    expect((err as InfraError).message).toContain(`${deb}: cannot extract ./boot from the package: tar exited 2: tar: ./boot/vmlinuz-*: Not found in archive`);
  });
});

describe('the lock file', () => {
  const lockFile = join(dir, 'bpfgate.lock.json');
  let lock: LockFile;

  beforeAll(async () => {
    const err = sink();
    const out = sink();
    expect(await kernelsCommand('lock', { names: DEFAULT_KERNELS.map((e) => e.name), lockFile, out, err })).toBe(0);
    expect(out.text()).toBe(`locked 5 kernels in ${lockFile}\n`);
    lock = await readLockFile(lockFile);
  });

  it('records the real package, version, filename and every sha256 of each kernel', () => {
    expect(lock.kernels.map((k) => k.name).sort()).toEqual(DEFAULT_KERNELS.map((e) => e.name).sort());
    for (const k of lock.kernels) {
      const a = fetched.get(k.name) as KernelArtifact;
      expect(k).toEqual({
        name: a.name,
        suite: a.ref.kind === 'debian' ? a.ref.suite : '',
        debArch: a.ref.kind === 'debian' ? a.ref.debArch : '',
        requested: a.ref.kind === 'debian' ? a.ref.package : '',
        package: a.package,
        version: a.version,
        filename: a.filename,
        sha256: a.debSha256,
        imageSha256: a.imageSha256,
        configSha256: a.configSha256,
      });
      expect(k.filename).toMatch(/^pool\/(updates\/)?main\/l\/linux-signed-(amd64|arm64)\/linux-image-.*\.deb$/);
    }
  });

  it('makes fetch take exactly the locked kernels, reporting each on one progress line', async () => {
    const err = sink();
    const out = sink();
    expect(await kernelsCommand('fetch', { names: ['trixie/linux-image-arm64-16k', 'bookworm/linux-image-amd64'], lockFile, out, err })).toBe(0);
    const lines = err.text().split('\n');
    const a16k = fetched.get('trixie/linux-image-arm64-16k') as KernelArtifact;
    expect(lines).toContain(`fetch trixie/linux-image-arm64-16k ${a16k.version} ... ${(a16k.imageBytes / 1e6).toFixed(1)} MB, 16K pages, cached`);
    expect(lines.some((l) => /^guest arm64 \.\.\. \d+\.\d\d MB, (cached|built in [\d.]+s)$/.test(l))).toBe(true);
    expect(out.text()).toBe('2 of 2 kernels ready\n');
  });

  it('refuses cached bits that differ from the lock', async () => {
    const entry = lock.kernels.find((k) => k.name === 'bookworm/linux-image-arm64');
    const tampered: LockFile = { lockfileVersion: 1, kernels: [{ ...(entry as (typeof lock.kernels)[number]), imageSha256: '0'.repeat(64) }] };
    const ref = DEFAULT_KERNELS[2]?.ref;
    expect(ref && ref.kind === 'debian' && ref.package).toBe('linux-image-arm64');
    const err = await fetchKernel(ref as KernelEntry['ref'], { lock: tampered }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-kernel-invalid');
    expect((err as InfraError).message).toContain(`the image of ${entry?.package} ${entry?.version} has sha256 ${entry?.imageSha256}, the lock file says ${'0'.repeat(64)}`);
  });

  it('says which locked version is no longer in the archive', async () => {
    const entry = lock.kernels.find((k) => k.name === 'trixie/linux-image-amd64') as (typeof lock.kernels)[number];
    const gone: LockFile = { lockfileVersion: 1, kernels: [{ ...entry, version: '6.12.1-1', sha256: 'f'.repeat(64) }] };
    const file = join(dir, 'gone.lock.json');
    writeFileSync(file, JSON.stringify(gone));
    const err = sink();
    expect(await kernelsCommand('fetch', { names: ['trixie/linux-image-amd64'], lockFile: file, out: sink(), err })).toBe(3);
    expect(err.text()).toContain(`error trixie/linux-image-amd64: ${entry.package} version 6.12.1-1 (amd64) is not in the archive's trixie, trixie-updates, trixie-security indexes: that version is no longer published`);
  });
});

describe('kernels fetch', () => {
  it('reports a cell whose page size the image header contradicts, and fails with exit 3', async () => {
    const entry = DEFAULT_KERNELS.find((e) => e.name === 'trixie/linux-image-arm64') as KernelEntry;
    const cell = {
      id: 'arm64-16k-6.12-mislabelled', arch: 'arm64' as const, pageSize: 16 as const, kernelLabel: '6.12', kernel: entry.ref,
      bootArgs: [], platform: 'qemu' as const, variants: [],
    };
    const err = sink();
    expect(await kernelsCommand('fetch', { matrixCells: [cell], out: sink(), err })).toBe(3);
    expect(err.text()).toContain(
      'error trixie/linux-image-arm64: the image is arm64 with 4K pages, but cells arm64-16k-6.12-mislabelled expect arm64 with 16K pages',
    );
  });

  it('refuses a name the catalogue does not have, listing the names it has', async () => {
    const err = await kernelsCommand('fetch', { names: ['trixie/linux-image-s390x'], out: sink(), err: sink() }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^unknown kernel "trixie\/linux-image-s390x"; the catalogue has: bookworm\/linux-image-amd64, /);
  });
});

describe('kernels list', () => {
  it('marks the fetched kernels as cached with their versions, and resolves the others from the lists', async () => {
    const out = sink();
    expect(await kernelsCommand('list', { out })).toBe(0);
    const rows = out.text().trim().split('\n');
    expect(rows[0]).toMatch(/^NAME\s+ARCH\s+PAGES\s+LABEL\s+DEFAULT\s+CACHED\s+VERSION$/);
    for (const e of DEFAULT_KERNELS) {
      const a = artifact(e);
      const row = rows.find((r) => r.startsWith(`${e.name} `));
      expect(row, e.name).toMatch(new RegExp(`\\s${e.pageSize}K\\s+${e.label.replace('.', '\\.')}\\s+yes\\s+cached\\s+${a.version?.replace(/[.+]/g, '\\$&')} \\(${a.package?.replace(/[.+]/g, '\\$&')}\\)$`));
    }
    const cloud = rows.find((r) => r.startsWith('trixie/linux-image-cloud-arm64 '));
    expect(cloud).toMatch(/\s6\.12-cloud\s+(no|cached)\s+6\.12\.\d+-\d+ \(linux-image-6\.12\.\d+\+deb13-cloud-arm64\)$/);
  });
});
