/**
 * What is left of the private apt to test without a mirror: the configuration each suite
 * family gets (read back by apt-config itself), the few fields read from apt's answers, and
 * the refusals that need no lists. Resolution and downloads run against the real archive in
 * test/integration/private-apt.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import {
  APT_SUITES,
  PrivateApt,
  aptDebFileName,
  familyAptConfText,
  familySourcesText,
  kernelImageDependency,
  readPolicyOutput,
  readShowOutput,
} from '../../runners/qemu/apt.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-apt-resolve-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Placeholder mirrors under the reserved .invalid domain: no real archive host is named here.
const MIRRORS = { archive: 'http://mirror.invalid/debian', security: 'http://mirror.invalid/debian-security' };
const OPTS = '[arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg target=Packages]';

describe('the private sources of each suite family', () => {
  it('gives a release its -updates and -security pockets, security from the security mirror', () => {
    expect(familySourcesText('bookworm', MIRRORS)).toBe(
      [
        `deb ${OPTS} ${MIRRORS.archive} bookworm main`,
        `deb ${OPTS} ${MIRRORS.archive} bookworm-updates main`,
        `deb ${OPTS} ${MIRRORS.security} bookworm-security main`,
        '',
      ].join('\n'),
    );
    expect(familySourcesText('trixie', MIRRORS).trim().split('\n').map((l) => l.split(' ').slice(-3).join(' '))).toEqual([
      `${MIRRORS.archive} trixie main`,
      `${MIRRORS.archive} trixie-updates main`,
      `${MIRRORS.security} trixie-security main`,
    ]);
  });

  it('keeps bookworm-backports to itself', () => {
    expect(familySourcesText('bookworm-backports', MIRRORS)).toBe(`deb ${OPTS} ${MIRRORS.archive} bookworm-backports main\n`);
  });
});

describe('the private apt.conf of a family', () => {
  let apt: PrivateApt;
  beforeAll(async () => {
    apt = await PrivateApt.open({ root, mirrors: MIRRORS });
    await apt.family('trixie').ready();
  });

  it('is written beside the family sources, with an empty status file', () => {
    const dir = join(root, 'trixie');
    expect(readFileSync(join(dir, 'apt.conf'), 'utf8')).toBe(familyAptConfText(dir));
    expect(readFileSync(join(dir, 'sources.list'), 'utf8')).toBe(familySourcesText('trixie', MIRRORS));
    expect(readFileSync(join(dir, 'status'), 'utf8')).toBe('');
    expect(existsSync(join(dir, 'lists', 'partial'))).toBe(true);
  });

  it('is read by apt itself: its own directories and cache, both arches, no pins, no locking, no system update hooks', () => {
    const dir = join(root, 'trixie');
    const dump = execFileSync('apt-config', ['-c', apt.family('trixie').aptConf, 'dump'], { encoding: 'utf8' });
    // apt-config prints keys in the case its defaults use: compare them case-insensitively.
    const value = (key: string) => new RegExp(`^${key} "([^"]*)";$`, 'mi').exec(dump)?.[1];
    expect(value('Dir::Etc::SourceList')).toBe(join(dir, 'sources.list'));
    expect(value('Dir::Etc::SourceParts')).toBe('/dev/null');
    expect(value('Dir::Etc::Preferences')).toBe('/dev/null');
    expect(value('Dir::Etc::PreferencesParts')).toBe('/dev/null');
    expect(value('APT::Default-Release')).toBe('');
    expect(value('Dir::State::Lists')).toBe(join(dir, 'lists'));
    expect(value('Dir::State::status')).toBe(join(dir, 'status'));
    expect(value('Dir::Cache')).toBe(join(dir, 'cache'));
    expect(value('Dir::Cache::pkgcache')).toBe(join(dir, 'cache', 'pkgcache.bin'));
    expect(value('Debug::NoLocking')).toBe('true');
    expect(value('APT::Architecture')).toBe('amd64');
    const arches = [...dump.matchAll(/^APT::Architectures:: "(\w+)";$/gm)].map((m) => m[1]);
    expect(arches).toEqual(['amd64', 'arm64']);
    expect(dump).not.toMatch(/^APT::Update::Post-Invoke-Success:: /m);
  });

  it('refuses a suite outside its configuration, and resolves nothing offline before the lists exist', async () => {
    expect(() => apt.family('sid')).toThrow(`suite sid is not in bpfgate's apt configuration (known: ${APT_SUITES.join(', ')})`);
    await expect(apt.listsState('bookworm')).resolves.toBe('missing');
    expect(await apt.memoized('linux-image-amd64', 'bookworm', 'amd64')).toBeUndefined();
    const err = await apt.resolve('linux-image-amd64', 'bookworm', 'amd64', { offline: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toContain("bpfgate's apt lists of bookworm are missing");
  });
});

// Answers of apt-cache 2.6 (placeholder mirror, descriptions shortened).
const SHOW = `Package: linux-image-arm64-16k
Source: linux-signed-arm64 (6.12.118+1)
Version: 6.12.118-1
Installed-Size: 13
Architecture: arm64
Depends: linux-image-6.12.118+deb13-arm64-16k (= 6.12.118-1)
Description: Linux for 64-bit ARMv8 machines (16k pages) (meta-package)
 This package depends on the latest Linux kernel and modules for use on
 .
 64-bit ARMv8 machines with 16k pages.
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-arm64/linux-image-arm64-16k_6.12.118-1_arm64.deb
Size: 1444
SHA256: 39c86493469e57882f58ca2b2c98648bb7ee79f7a49f9de7f76330d306ba8dfd

Package: tzdata
Version: 2026f-0+deb13u1
Architecture: all
Pre-Depends: debconf (>= 0.5) | debconf-2.0
Filename: pool/main/t/tzdata/tzdata_2026f-0+deb13u1_all.deb
Size: 262620
SHA256: 7c0f3f8b1b1f0e5e4bbd9e76f2c3d6f0e2b1c0d9a8b7c6d5e4f3a2b1c0d9e8f7

`;

describe('reading apt\'s answers', () => {
  it('keeps the version, architecture, dependencies, pool file, size and hash of each shown stanza', () => {
    expect(readShowOutput(SHOW)).toEqual([
      {
        package: 'linux-image-arm64-16k',
        version: '6.12.118-1',
        architecture: 'arm64',
        depends: 'linux-image-6.12.118+deb13-arm64-16k (= 6.12.118-1)',
        filename: 'pool/updates/main/l/linux-signed-arm64/linux-image-arm64-16k_6.12.118-1_arm64.deb',
        size: 1444,
        sha256: '39c86493469e57882f58ca2b2c98648bb7ee79f7a49f9de7f76330d306ba8dfd',
      },
      expect.objectContaining({ package: 'tzdata', architecture: 'all', depends: 'debconf (>= 0.5) | debconf-2.0' }),
    ]);
  });

  it('follows a kernel metapackage to the image package it pins, and nothing else', () => {
    expect(kernelImageDependency('linux-image-6.12.118+deb13-arm64-16k (= 6.12.118-1)', 'linux-image-arm64-16k')).toEqual({
      name: 'linux-image-6.12.118+deb13-arm64-16k',
      version: '6.12.118-1',
    });
    expect(kernelImageDependency('linux-image-6.1.0-57-cloud-amd64-unsigned:amd64', 'linux-image-cloud-amd64')).toEqual({
      name: 'linux-image-6.1.0-57-cloud-amd64-unsigned',
      version: undefined,
    });
    // An image package depends on tools, not on another image.
    expect(kernelImageDependency('kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool', 'linux-image-6.12.118+deb13-amd64')).toBeUndefined();
    expect(kernelImageDependency('linux-image-amd64 (= 1)', 'linux-image-amd64')).toBeUndefined();
  });

  it('reads the candidate and the suite of each version from apt-cache policy', () => {
    const policy = [
      'linux-image-arm64-16k:arm64:',
      '  Installed: (none)',
      '  Candidate: 6.12.118-1',
      '  Version table:',
      '     6.12.118-1 500',
      '        500 http://mirror.invalid/debian-security trixie-security/main arm64 Packages',
      '     6.12.117-1 500',
      '        500 http://mirror.invalid/debian trixie/main arm64 Packages',
      'tzdata:',
      '  Installed: (none)',
      '  Candidate: 2026f-0+deb13u1',
      '  Version table:',
      ' *** 2026f-0+deb13u1 500',
      '        500 http://mirror.invalid/debian trixie-updates/main amd64 Packages',
      '        500 http://mirror.invalid/debian trixie/main amd64 Packages',
      '        100 /var/lib/dpkg/status',
      'tzdata:arm64:',
      '  Installed: (none)',
      '  Candidate: (none)',
      '  Version table:',
      '',
    ].join('\n');
    expect(readPolicyOutput(policy)).toEqual([
      {
        header: 'linux-image-arm64-16k:arm64',
        candidate: '6.12.118-1',
        suites: new Map([
          ['6.12.118-1', 'trixie-security'],
          ['6.12.117-1', 'trixie'],
        ]),
      },
      { header: 'tzdata', candidate: '2026f-0+deb13u1', suites: new Map([['2026f-0+deb13u1', 'trixie-updates']]) },
      { header: 'tzdata:arm64', candidate: undefined, suites: new Map() },
    ]);
  });

  it('knows the file name apt-get download writes (an epoch quoted as %3a)', () => {
    expect(aptDebFileName('busybox-static', '1:1.37.0-6+b9', 'arm64')).toBe('busybox-static_1%3a1.37.0-6+b9_arm64.deb');
    expect(aptDebFileName('bpftool', '7.5.0+6.12.95-1~bpo12+1', 'amd64')).toBe('bpftool_7.5.0+6.12.95-1~bpo12+1_amd64.deb');
  });
});
