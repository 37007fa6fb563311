import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import { suiteFamily } from '../../runners/qemu/apt.js';
import { findDebianMirrors, mirrorsFromSources, parseDeb822Sources, parseOneLineSources } from '../../runners/qemu/debian-mirrors.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-apt-sources-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Placeholder mirrors under the reserved .invalid domain: no real archive host is named here.
const ARCHIVE = 'http://mirror.invalid/debian';
const SECURITY = 'http://mirror.invalid/debian-security';

const ONE_LINE = `# the machine's sources
deb ${ARCHIVE} bookworm main contrib non-free-firmware
deb-src ${ARCHIVE} bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${SECURITY}/ bookworm-security main
deb [ arch=amd64 ] http://other.invalid/apt cloud-sdk-bookworm main
   # indented comment
deb ${ARCHIVE} bookworm-updates main # trailing comment
`;

const DEB822 = `Types: deb
# a comment inside the paragraph
URIs: ${ARCHIVE}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${SECURITY}
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb deb-src
URIs: http://disabled.invalid/debian
Suites: trixie
Components: main
Enabled: no
`;

describe('reading the machine\'s apt sources', () => {
  it('parses the one-line format, dropping comments and bracketed options', () => {
    const sources = parseOneLineSources(ONE_LINE);
    expect(sources.map((s) => [s.types[0], s.uris[0], s.suites[0], s.components.join(',')])).toEqual([
      ['deb', ARCHIVE, 'bookworm', 'main,contrib,non-free-firmware'],
      ['deb-src', ARCHIVE, 'bookworm', 'main'],
      ['deb', `${SECURITY}/`, 'bookworm-security', 'main'],
      ['deb', 'http://other.invalid/apt', 'cloud-sdk-bookworm', 'main'],
      ['deb', ARCHIVE, 'bookworm-updates', 'main'],
    ]);
  });

  it('parses deb822 paragraphs, joining a multi-line Signed-By key and skipping disabled ones', () => {
    const sources = parseDeb822Sources(DEB822);
    expect(sources).toHaveLength(2);
    expect(sources[0]).toMatchObject({ types: ['deb'], uris: [ARCHIVE], suites: ['bookworm', 'bookworm-updates'], components: ['main'] });
    expect(sources[1]).toMatchObject({ uris: [SECURITY], suites: ['bookworm-security'] });
  });

  it('takes the archive from a Debian suite and the security mirror from a -security suite', () => {
    expect(mirrorsFromSources(parseOneLineSources(ONE_LINE))).toEqual({ archive: ARCHIVE, security: SECURITY });
    expect(mirrorsFromSources(parseDeb822Sources(DEB822))).toEqual({ archive: ARCHIVE, security: SECURITY });
  });

  it('ignores sources whose suites are not Debian\'s and source-only entries', () => {
    const text = `deb http://other.invalid/ubuntu jammy main\ndeb-src ${ARCHIVE} bookworm main\n`;
    expect(mirrorsFromSources(parseOneLineSources(text))).toEqual({});
  });

  function etcWith(files: Record<string, string>): string {
    const etc = mkdtempSync(join(dir, 'etc-'));
    mkdirSync(join(etc, 'sources.list.d'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(etc, name), text);
    return etc;
  }

  it('finds the mirrors in sources.list.d/*.sources and ignores files with other suffixes', async () => {
    const etc = etcWith({
      'sources.list.d/debian.sources': DEB822,
      'sources.list.d/old.list.disabled': `deb http://wrong.invalid/debian bookworm main\n`,
    });
    await expect(findDebianMirrors({ etcApt: etc, env: {} })).resolves.toEqual({ archive: ARCHIVE, security: SECURITY });
  });

  it('lets BPFGATE_DEBIAN_MIRROR and BPFGATE_DEBIAN_SECURITY_MIRROR win over the sources', async () => {
    const etc = etcWith({ 'sources.list': ONE_LINE });
    const env = { BPFGATE_DEBIAN_MIRROR: 'http://env.invalid/debian/', BPFGATE_DEBIAN_SECURITY_MIRROR: 'http://env.invalid/sec' };
    await expect(findDebianMirrors({ etcApt: etc, env })).resolves.toEqual({ archive: 'http://env.invalid/debian', security: 'http://env.invalid/sec' });
  });

  it('derives the security mirror from an archive ending in /debian when none is configured', async () => {
    const etc = etcWith({});
    await expect(findDebianMirrors({ etcApt: etc, env: { BPFGATE_DEBIAN_MIRROR: ARCHIVE } })).resolves.toEqual({ archive: ARCHIVE, security: SECURITY });
  });

  it('says how to configure a mirror when the machine has none', async () => {
    const etc = etcWith({ 'sources.list': 'deb http://other.invalid/ubuntu jammy main\n' });
    const err = await findDebianMirrors({ etcApt: etc, env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toContain('BPFGATE_DEBIAN_MIRROR');
  });

  it('refuses an archive it cannot derive a security mirror for', async () => {
    const etc = etcWith({});
    const err = await findDebianMirrors({ etcApt: etc, env: { BPFGATE_DEBIAN_MIRROR: 'http://other.invalid/mirror' } }).catch((e: unknown) => e);
    expect((err as InfraError).code).toBe('infra-download');
    expect((err as InfraError).message).toContain('BPFGATE_DEBIAN_SECURITY_MIRROR');
  });
});

describe('suite families', () => {
  it('reads a release suite as its family and a pocket as itself', () => {
    expect(suiteFamily('bookworm')).toEqual(['bookworm', 'bookworm-updates', 'bookworm-security']);
    expect(suiteFamily('trixie')).toEqual(['trixie', 'trixie-updates', 'trixie-security']);
    expect(suiteFamily('bookworm-backports')).toEqual(['bookworm-backports']);
    expect(suiteFamily('trixie-security')).toEqual(['trixie-security']);
  });
});
