import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../core/errors.js';
import { findLocked, formatLockFile, parseLockFile, readLockFile, writeLockFile, type LockedKernel } from '../../runners/qemu/lockfile.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-lockfile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const h = (c: string) => c.repeat(64);

const ARM16K: LockedKernel = {
  name: 'trixie/linux-image-arm64-16k',
  suite: 'trixie',
  debArch: 'arm64',
  requested: 'linux-image-arm64-16k',
  package: 'linux-image-6.12.117+deb13-arm64-16k',
  version: '6.12.117-1',
  filename: 'pool/main/l/linux-signed-arm64/linux-image-6.12.117+deb13-arm64-16k_6.12.117-1_arm64.deb',
  sha256: h('a'),
  imageSha256: h('b'),
  configSha256: h('c'),
};
const X86: LockedKernel = { ...ARM16K, name: 'bookworm/linux-image-amd64', suite: 'bookworm', debArch: 'amd64', requested: 'linux-image-amd64', package: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2' };

function parseError(text: string): InputError {
  try {
    parseLockFile(text, 'bpfgate.lock.json');
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('the lock file was accepted');
}

describe('the lock file', () => {
  it('is written sorted by name and read back as it was', async () => {
    const file = join(dir, 'bpfgate.lock.json');
    await writeLockFile(file, { lockfileVersion: 1, kernels: [ARM16K, X86] });
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    const lock = await readLockFile(file);
    expect(lock.kernels.map((k) => k.name)).toEqual(['bookworm/linux-image-amd64', 'trixie/linux-image-arm64-16k']);
    expect(formatLockFile(lock)).toBe(text);
  });

  it('finds the entry of a ref by suite, requested package and arch', () => {
    const lock = { lockfileVersion: 1 as const, kernels: [ARM16K, X86] };
    expect(findLocked(lock, { kind: 'debian', suite: 'trixie', package: 'linux-image-arm64-16k', debArch: 'arm64' })).toBe(ARM16K);
    expect(findLocked(lock, { kind: 'debian', suite: 'bookworm', package: 'linux-image-arm64-16k', debArch: 'arm64' })).toBeUndefined();
    expect(findLocked(lock, { kind: 'file', image: 'a', config: 'b' })).toBeUndefined();
    expect(findLocked(undefined, { kind: 'debian', suite: 'trixie', package: 'linux-image-arm64-16k', debArch: 'arm64' })).toBeUndefined();
  });

  it('reports broken JSON with its line and column', () => {
    const err = parseError('{\n  "lockfileVersion": 1,\n  "kernels": [,]\n}\n');
    expect(err.code).toBe('lockfile-json');
    expect([err.line, err.column]).toEqual([3, 15]);
    expect(err.message).toBe('bpfgate.lock.json:3:15: not valid JSON: Unexpected , in flow sequence');
  });

  it('refuses what YAML would accept but JSON does not, at the offending token', () => {
    const trailing = parseError('{\n  "lockfileVersion": 1,\n  "kernels": [],\n}\n');
    expect([trailing.code, trailing.line]).toEqual(['lockfile-json', 4]);
    const bare = parseError('{\n  "lockfileVersion": 1,\n  "kernels": [ { "name": trixie } ]\n}\n');
    expect([bare.code, bare.line, bare.column]).toEqual(['lockfile-json', 3, 26]);
  });

  it('reports a missing field at the entry that lacks it', () => {
    const text = formatLockFile({ lockfileVersion: 1, kernels: [X86, ARM16K] }).replace(/\n\s*"configSha256": "c+"\n/, '\n');
    const fixed = text.replace(/"imageSha256": "(b+)",\n(\s*)}/, '"imageSha256": "$1"\n$2}');
    const err = parseError(fixed);
    expect(err.code).toBe('lockfile-schema');
    expect([err.line, err.column, err.field]).toEqual([4, 5, 'kernels[0]']);
    expect(err.message).toBe('bpfgate.lock.json:4:5: kernels[0]: missing required field "configSha256"');
  });

  it('refuses a sha256 that is not 64 hex digits, and another format version, at the field', () => {
    const sha = parseError(formatLockFile({ lockfileVersion: 1, kernels: [{ ...X86, sha256: 'abc' }] }));
    expect([sha.line, sha.column, sha.field]).toEqual([12, 17, 'kernels[0].sha256']);
    expect(sha.detail).toBe('kernels[0].sha256: expected a string matching ^[0-9a-f]{64}$ (got "abc")');
    const version = parseError('{ "lockfileVersion": 2, "kernels": [] }');
    expect([version.line, version.column]).toEqual([1, 22]);
    expect(version.detail).toBe('lockfileVersion: expected 1 (got 2)');
  });

  it('reports an unreadable file as bad input naming it', async () => {
    const err = await readLockFile(join(dir, 'missing.lock.json')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('lockfile-missing');
    expect((err as InputError).exit).toBe(2);
    expect((err as InputError).message).toContain('missing.lock.json: cannot read the lock file: ENOENT');
  });
});
