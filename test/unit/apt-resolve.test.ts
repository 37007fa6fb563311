import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import { APT_SUITES, PrivateApt } from '../../runners/qemu/apt.js';

// A private apt over hand-written indexes: resolution is exercised for real (gzip'd
// Packages files in the lists directory, a stamp, the memo), and nothing touches the network.
const root = mkdtempSync(join(tmpdir(), 'bpfgate-apt-resolve-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const MIRRORS = { archive: 'http://mirror.invalid/debian', security: 'http://mirror.invalid/debian-security' };
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function stanza(pkg: string, version: string, arch: string, depends?: string): string {
  return [
    `Package: ${pkg}`,
    'Source: linux-signed-amd64',
    `Version: ${version}`,
    `Architecture: ${arch}`,
    ...(depends ? [`Depends: ${depends}`] : []),
    'Description: test stanza',
    ' with a continuation line',
    `Filename: pool/main/l/test/${pkg}_${version.replace(/^\d+:/, '')}_${arch}.deb`,
    'Size: 1234',
    `SHA256: ${sha(`${pkg}=${version}:${arch}`)}`,
  ].join('\n');
}

function writeIndex(suite: string, arch: string, stanzas: string[]): void {
  const host = suite.endsWith('-security') ? 'mirror.invalid_debian-security' : 'mirror.invalid_debian';
  writeFileSync(join(root, 'lists', `${host}_dists_${suite}_main_binary-${arch}_Packages.gz`), gzipSync(`${stanzas.join('\n\n')}\n`));
}

let apt: PrivateApt;

beforeAll(async () => {
  apt = await PrivateApt.open({ root, mirrors: MIRRORS });
  writeIndex('bookworm', 'amd64', [
    stanza('linux-image-amd64', '6.1.176-1', 'amd64', 'linux-image-6.1.0-50-amd64 (= 6.1.176-1)'),
    stanza('linux-image-6.1.0-50-amd64', '6.1.176-1', 'amd64', 'kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool'),
    stanza('bpftool', '7.1.0+6.1.176-1', 'amd64', 'libc6 (>= 2.34)'),
  ]);
  writeIndex('bookworm-security', 'amd64', [
    stanza('linux-image-amd64', '6.1.192-2', 'amd64', 'linux-image-6.1.0-56-amd64 (= 6.1.192-2)'),
    stanza('linux-image-6.1.0-56-amd64', '6.1.192-2', 'amd64', 'kmod'),
  ]);
  writeIndex('bookworm-backports', 'amd64', [
    stanza('bpftool', '7.5.0+6.12.95-1~bpo12+1', 'amd64', 'libc6 (>= 2.34)'),
    stanza('bpftool', '7.5.0+6.12.74-1~bpo12+1', 'amd64', 'libc6 (>= 2.34)'),
  ]);
  // bookworm-updates has an empty index, and there is no arm64 index at all.
  writeIndex('bookworm-updates', 'amd64', []);
  writeFileSync(join(root, 'lists-stamp.json'), JSON.stringify({ at: Date.now(), sourcesSha256: sha(apt.sourcesText()) }));
});

describe('the private apt configuration', () => {
  it('writes a sources list with every suite, both arches and the Debian keyring, security suites on the security mirror', () => {
    const lines = readFileSync(join(root, 'sources.list'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(APT_SUITES.length);
    for (const suite of APT_SUITES) {
      const line = lines.find((l) => l.endsWith(` ${suite} main`));
      expect(line, suite).toContain('arch=amd64,arm64');
      expect(line).toContain('signed-by=/usr/share/keyrings/debian-archive-keyring.gpg');
      expect(line).toContain(suite.endsWith('-security') ? MIRRORS.security : `${MIRRORS.archive} `);
    }
  });

  it('is read by apt itself: its own directories, both arches, no locking, and no system update hooks', () => {
    const dump = execFileSync('apt-config', ['-c', apt.aptConf, 'dump'], { encoding: 'utf8' });
    // apt-config prints keys in the case its defaults use: compare them case-insensitively.
    const value = (key: string) => new RegExp(`^${key} "([^"]*)";$`, 'mi').exec(dump)?.[1];
    expect(value('Dir::State::Lists')).toBe(join(root, 'lists'));
    expect(value('Dir::Etc::SourceList')).toBe(join(root, 'sources.list'));
    expect(value('Dir::Etc::SourceParts')).toBe('/dev/null');
    expect(value('Dir::Cache')).toBe(join(root, 'cache'));
    expect(value('Debug::NoLocking')).toBe('true');
    const arches = [...dump.matchAll(/^APT::Architectures:: "(\w+)";$/gm)].map((m) => m[1]);
    expect(arches).toEqual(['amd64', 'arm64']);
    expect(dump).not.toMatch(/^APT::Update::Post-Invoke-Success:: /m);
  });
});

describe('resolving packages from the indexes', () => {
  it('follows a kernel metapackage to the newest real image package across the suite family', async () => {
    const r = await apt.resolve('linux-image-amd64', 'bookworm', 'amd64');
    expect(r).toMatchObject({
      requested: 'linux-image-amd64',
      package: 'linux-image-6.1.0-56-amd64',
      version: '6.1.192-2',
      suite: 'bookworm-security',
      filename: 'pool/main/l/test/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb',
      size: 1234,
      sha256: sha('linux-image-6.1.0-56-amd64=6.1.192-2:amd64'),
    });
  });

  it('takes the newest of several versions in one index (backports keeps older builds)', async () => {
    const r = await apt.resolve('bpftool', 'bookworm-backports', 'amd64');
    expect(r.version).toBe('7.5.0+6.12.95-1~bpo12+1');
    expect(r.suite).toBe('bookworm-backports');
  });

  it('keeps a pocket to itself: bookworm-backports never answers for bookworm', async () => {
    expect((await apt.resolve('bpftool', 'bookworm', 'amd64')).version).toBe('7.1.0+6.1.176-1');
  });

  it('resolves an exact version from a lock, and says which version is gone when it is', async () => {
    const old = await apt.resolve('linux-image-6.1.0-50-amd64', 'bookworm', 'amd64', { version: '6.1.176-1' });
    expect(old.suite).toBe('bookworm');
    const err = await apt.resolve('linux-image-6.1.0-50-amd64', 'bookworm', 'amd64', { version: '6.1.170-1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toMatch(/linux-image-6\.1\.0-50-amd64 version 6\.1\.170-1 .*no longer published/);
  });

  it('names the package, the arch and the suites searched when nothing matches', async () => {
    const err = await apt.resolve('linux-image-arm64', 'bookworm', 'arm64', { offline: true }).catch((e: unknown) => e);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toBe("linux-image-arm64 (arm64) is not in the archive's bookworm, bookworm-updates, bookworm-security indexes");
  });

  it('refuses a suite outside its configuration', async () => {
    const err = await apt.resolve('linux-image-amd64', 'sid', 'amd64').catch((e: unknown) => e);
    expect((err as InfraError).message).toContain('suite sid is not in');
  });

  it('remembers resolutions while the lists are fresh, and forgets them when the lists change', async () => {
    await apt.resolve('linux-image-amd64', 'bookworm', 'amd64');
    expect((await apt.memoized('linux-image-amd64', 'bookworm', 'amd64'))?.package).toBe('linux-image-6.1.0-56-amd64');
    expect(await apt.listsState()).toBe('fresh');
    expect(await apt.listsState(Date.now() + 2 * 24 * 3600 * 1000)).toBe('stale');
    const stampFile = join(root, 'lists-stamp.json');
    const stamp = readFileSync(stampFile, 'utf8');
    writeFileSync(stampFile, JSON.stringify({ ...JSON.parse(stamp), at: Date.now() + 1 }));
    expect(await apt.memoized('linux-image-amd64', 'bookworm', 'amd64')).toBeUndefined();
    writeFileSync(stampFile, stamp);
  });

  it('keeps every entry when many resolutions finish at once', async () => {
    await Promise.all([
      apt.resolve('bpftool', 'bookworm', 'amd64'),
      apt.resolve('bpftool', 'bookworm-backports', 'amd64'),
      apt.resolve('linux-image-6.1.0-56-amd64', 'bookworm', 'amd64'),
      apt.resolve('linux-image-amd64', 'bookworm', 'amd64'),
    ]);
    const memo = JSON.parse(readFileSync(join(root, 'resolutions.json'), 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(memo.entries)).toEqual(
      expect.arrayContaining([
        'bookworm/bpftool:amd64',
        'bookworm-backports/bpftool:amd64',
        'bookworm/linux-image-6.1.0-56-amd64:amd64',
        'bookworm/linux-image-amd64:amd64',
      ]),
    );
    expect(existsSync(join(root, 'lists-stamp.json'))).toBe(true);
  });
});
