/**
 * The private apt against the real archive (the machine's Debian mirror): kernel
 * metapackages of bookworm, trixie and bookworm-backports on both arches followed to their
 * image packages and downloaded, the guest package set of both arches, an exact (locked)
 * version, the errors for an unknown package and an unknown version, warm resolutions that
 * start no process, and stale lists that still serve when the mirror cannot be reached.
 * Downloads land in the cache ($BPFGATE_CACHE or ~/.cache/bpfgate), so later runs are warm.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../core/download.js';
import { InfraError } from '../../core/errors.js';
import { kernelName } from '../../matrix/kernel-catalogue.js';
import { PrivateApt, privateApt, type DebArch, type ResolvedPackage } from '../../runners/qemu/apt.js';
import { GUEST_PACKAGES } from '../../runners/qemu/guest-image.js';
import { fetchKernel } from '../../runners/qemu/kernel-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-private-apt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const log: string[] = [];
let apt: PrivateApt;
beforeAll(async () => {
  apt = await privateApt({ onLog: (l) => log.push(l) });
});

const SUITES = ['bookworm', 'trixie', 'bookworm-backports'] as const;
const ARCHES: DebArch[] = ['amd64', 'arm64'];
/** The image package each suite's metapackage stands for. */
const IMAGE: Record<(typeof SUITES)[number], (a: DebArch) => RegExp> = {
  bookworm: (a) => new RegExp(`^linux-image-6\\.1\\.0-\\d+-${a}$`),
  trixie: (a) => new RegExp(`^linux-image-6\\.12\\.\\d+\\+deb13-${a}$`),
  'bookworm-backports': (a) => new RegExp(`^linux-image-6\\.12\\.\\d+\\+(deb12|bpo)-${a}$`),
};

/** What apt itself says the candidate of a package is, in a family's private configuration. */
async function candidate(suite: string, pkg: string): Promise<string> {
  const { stdout } = await execa('apt-cache', ['-c', apt.family(suite).aptConf, 'policy', pkg]);
  return /^\s*Candidate: (\S+)$/m.exec(stdout)?.[1] ?? '';
}

describe.each(SUITES)('kernels of %s', (suite) => {
  it.each(ARCHES)('follows linux-image-%s to the image package of apt\'s candidate, and downloads it', async (debArch) => {
    const meta = `linux-image-${debArch}`;
    const r = await apt.resolve(meta, suite, debArch);
    expect(r).toMatchObject({ requested: meta, debArch, architecture: debArch, family: suite });
    expect(r.package).toMatch(IMAGE[suite](debArch));
    expect(r.version).toBe(await candidate(suite, `${meta}:${debArch}`));
    expect(r.suite.startsWith(suite)).toBe(true);
    expect(r.filename).toMatch(new RegExp(`^pool/(updates/)?main/l/linux-signed-${debArch}/${r.package.replace(/[.+]/g, '\\$&')}_`));
    expect(r.size).toBeGreaterThan(20e6);
    const kernel = await fetchKernel({ kind: 'debian', suite, package: meta, debArch });
    expect([kernel.package, kernel.version, kernel.debSha256, kernel.release]).toEqual([r.package, r.version, r.sha256, r.package.slice('linux-image-'.length)]);
    expect(kernel.arch).toBe(debArch === 'amd64' ? 'x86_64' : 'arm64');
  });
});

describe('the guest packages', () => {
  it.each(ARCHES)('resolve for %s in their suites and download with the sha256 of the index', async (debArch) => {
    const resolved = await Promise.all(GUEST_PACKAGES.map((p) => apt.resolve(p.package, p.suite, debArch)));
    expect(resolved.map((r) => r.package)).toEqual(GUEST_PACKAGES.map((p) => p.package));
    expect(resolved.find((r) => r.package === 'bpftool')).toMatchObject({ suite: 'bookworm-backports', version: expect.stringMatching(/~bpo12\+\d+$/) });
    const debs = await apt.downloadAll(resolved);
    for (const [i, deb] of debs.entries()) {
      const r = resolved[i] as ResolvedPackage;
      expect(await sha256File(deb)).toBe(r.sha256);
      const { stdout } = await execa('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture']);
      expect(stdout).toBe(`Package: ${r.package}\nVersion: ${r.version}\nArchitecture: ${r.architecture}`);
    }
  });
});

describe('exact versions', () => {
  it('resolves every published version of a metapackage exactly, through to its image package', async () => {
    const { stdout } = await execa('apt-cache', ['-c', apt.family('bookworm').aptConf, 'madison', 'linux-image-amd64:amd64']);
    const versions = [...new Set(stdout.split('\n').map((l) => l.split('|')[1]?.trim()).filter((v): v is string => !!v))];
    expect(versions.length).toBeGreaterThan(0);
    for (const version of versions) {
      const meta = await apt.resolve('linux-image-amd64', 'bookworm', 'amd64', { version });
      expect([meta.version, meta.package]).toEqual([version, expect.stringMatching(IMAGE.bookworm('amd64'))]);
      // As a lock file names it: the image package at its version.
      const locked = await apt.resolve(meta.package, 'bookworm', 'amd64', { version });
      expect(locked).toEqual({ ...meta, requested: meta.package });
    }
  });

  it('says a version is no longer published and how to relock', async () => {
    const err = await apt.resolve('linux-image-arm64', 'bookworm-backports', 'arm64', { version: '6.12.1-1~bpo12+1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toBe(
      "linux-image-arm64 version 6.12.1-1~bpo12+1 (arm64) is not in the archive's bookworm-backports indexes: " +
        'that version is no longer published; update the lock file (bpfgate kernels lock)',
    );
  });

  it('names an unknown package, its arch and the suites searched', async () => {
    const err = await apt.resolve('bpfgate-no-such-package', 'trixie', 'arm64').catch((e: unknown) => e);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toBe("bpfgate-no-such-package (arm64) is not in the archive's trixie, trixie-updates, trixie-security indexes");
  });
});

describe('warm and offline', () => {
  it('answers resolutions made before from the memo, without starting any process', async () => {
    // apt-get and apt-cache cannot even be found on this PATH: any process would fail.
    const noTools = mkdtempSync(join(dir, 'bin-'));
    const warm = await PrivateApt.open({ env: { ...process.env, PATH: noTools }, mirrors: apt.mirrors });
    const started = Date.now();
    const again = await Promise.all(SUITES.flatMap((s) => ARCHES.map((a) => warm.resolve(`linux-image-${a}`, s, a))));
    expect(Date.now() - started).toBeLessThan(1000);
    const first = await Promise.all(SUITES.flatMap((s) => ARCHES.map((a) => apt.resolve(`linux-image-${a}`, s, a))));
    expect(again).toEqual(first);
    const kernel = await fetchKernel({ kind: 'debian', suite: 'trixie', package: 'linux-image-arm64', debArch: 'arm64' }, { apt: warm });
    expect(kernel.origin).toBe('cache');
    expect(kernelName(kernel.ref)).toBe('trixie/linux-image-arm64');
  });

  it('keeps using day-old lists, with a warning, when the mirror cannot be reached', async () => {
    // A copy of the backports family whose lists are two days old, and a proxy that refuses every connection.
    const root = join(dir, 'stale-apt');
    mkdirSync(root);
    cpSync(apt.family('bookworm-backports').root, join(root, 'bookworm-backports'), { recursive: true });
    rmSync(join(root, 'bookworm-backports', 'resolutions.json'), { force: true });
    const stamp = join(root, 'bookworm-backports', 'lists-stamp.json');
    const fresh = JSON.parse(readFileSync(stamp, 'utf8')) as { at: number };
    writeFileSync(stamp, JSON.stringify({ ...fresh, at: Date.now() - 2 * 24 * 3600 * 1000 }));
    const warnings: string[] = [];
    const proxy = `http://127.0.0.1:${await closedPort()}`;
    const offline = await PrivateApt.open({ root, mirrors: apt.mirrors, env: { ...process.env, http_proxy: proxy }, onLog: (l) => warnings.push(l) });
    expect(await offline.listsState('bookworm-backports')).toBe('stale');
    const r = await offline.resolve('bpftool', 'bookworm-backports', 'amd64');
    expect(r).toEqual(await apt.resolve('bpftool', 'bookworm-backports', 'amd64'));
    expect(warnings.some((w) => w.startsWith('warn: apt-get update (bookworm-backports) failed, using the lists from before: '))).toBe(true);
    expect(await offline.listsState('bookworm-backports')).toBe('stale');
  });
});

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}
