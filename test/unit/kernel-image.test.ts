import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import { DEFAULT_KERNELS } from '../../matrix/kernel-catalogue.js';
import {
  cachedKernel,
  fetchKernel,
  identifyKernelImage,
  inspectKernelImage,
  parseKernelConfig,
  readKernelConfig,
  type KernelArtifact,
} from '../../runners/qemu/kernel-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-kernel-image-'));
const savedCache = process.env.BPFGATE_CACHE;

// The real kernels of the default matrix, when a previous fetch left them in the cache
// (the integration test kernel-fetch fetches them). Looked up before the cache is redirected.
const real = new Map<string, KernelArtifact>();
for (const e of DEFAULT_KERNELS) {
  const a = await cachedKernel(e.ref);
  if (a) real.set(e.name, a);
}
const NO_REAL = 'the default kernels are not in the cache (run test/integration/kernel-fetch.test.ts first)';

beforeAll(() => {
  // Unpacked user images go to the cache: keep them in this test's directory.
  process.env.BPFGATE_CACHE = join(dir, 'cache');
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.BPFGATE_CACHE;
  else process.env.BPFGATE_CACHE = savedCache;
  rmSync(dir, { recursive: true, force: true });
});

/** A minimal x86 boot-protocol header with a kernel_version string. */
function bzImage(version: string): Buffer {
  const buf = Buffer.alloc(0x1000);
  buf.write('HdrS', 0x202, 'latin1');
  buf.writeUInt16LE(0x300 - 0x200, 0x20e);
  buf.write(`${version} (debian-kernel@lists) #1 SMP Debian\0`, 0x300, 'latin1');
  return buf;
}

/** A minimal arm64 Image header; pageCode 1/2/3 = 4K/16K/64K, plus a version banner. */
function arm64Image(pageCode: number, opts: { bigEndian?: boolean; release?: string } = {}): Buffer {
  const buf = Buffer.alloc(0x2000);
  buf.writeBigUInt64LE(BigInt((pageCode << 1) | (opts.bigEndian ? 1 : 0)), 24);
  buf.writeUInt32LE(0x644d5241, 0x38);
  buf.write(`Linux version ${opts.release ?? '6.12.0-test-arm64'} (builder@host) (gcc) #1 SMP\0`, 0x1000, 'latin1');
  return buf;
}

/** An EFI zboot image: MZ, "zimg", payload offset and size, compression name, payload. */
function zboot(compression: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(0x200);
  header.write('MZ', 0, 'latin1');
  header.write('zimg', 4, 'latin1');
  header.writeUInt32LE(0x200, 8);
  header.writeUInt32LE(payload.length, 12);
  header.write(`${compression}\0`, 0x18, 'latin1');
  return Buffer.concat([header, payload]);
}

function file(name: string, content: Buffer | string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function kernelError(promise: Promise<unknown>): Promise<InfraError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InfraError);
  expect((err as InfraError).code).toBe('infra-kernel-invalid');
  return err as InfraError;
}

const CONFIG_16K = `#
# Automatically generated file; DO NOT EDIT.
# Linux/arm64 6.12.0 Kernel Configuration
#
CONFIG_ARM64_16K_PAGES=y
# CONFIG_ARM64_4K_PAGES is not set
CONFIG_LSM="landlock,lockdown,yama,bpf"
CONFIG_ARM64_VA_BITS=52
CONFIG_ILLEGAL_POINTER_VALUE=0xdead000000000000
CONFIG_CC_VERSION_TEXT="gcc \\"14\\""
CONFIG_BPF_LSM=m
`;

describe('reading kernel image headers', () => {
  it('recognises a bzImage by "HdrS" at 0x202 and reads its release from the header', () => {
    expect(identifyKernelImage(bzImage('6.1.0-56-amd64'))).toEqual({ kind: 'bzImage', release: '6.1.0-56-amd64' });
  });

  it('reads the arm64 page size from the Image header flags (bits 1-2)', () => {
    expect(identifyKernelImage(arm64Image(1))).toMatchObject({ kind: 'arm64-image', pageSizeKiB: 4, bigEndian: false });
    expect(identifyKernelImage(arm64Image(2))).toMatchObject({ kind: 'arm64-image', pageSizeKiB: 16 });
    expect(identifyKernelImage(arm64Image(3))).toMatchObject({ kind: 'arm64-image', pageSizeKiB: 64 });
    expect(identifyKernelImage(arm64Image(0))).toMatchObject({ kind: 'arm64-image', pageSizeKiB: undefined });
  });

  it('unpacks an EFI zboot image with a gzip payload and reads the inner Image', async () => {
    const info = await inspectKernelImage(file('zboot-gzip', zboot('gzip', gzipSync(arm64Image(2, { release: '6.12.9-zb' })))));
    expect(info).toMatchObject({ format: 'arm64-zboot', arch: 'arm64', pageSizeKiB: 16, release: '6.12.9-zb' });
    expect(info.image && identifyKernelImage(info.image).kind).toBe('arm64-image');
  });

  it('unpacks an EFI zboot image with a zstd payload through the zstd tool', async () => {
    const payload = execFileSync('zstd', ['-q', '-c'], { input: arm64Image(3) });
    const info = await inspectKernelImage(file('zboot-zstd', zboot('zstd', payload)));
    expect(info).toMatchObject({ format: 'arm64-zboot', pageSizeKiB: 64 });
  });

  it('unpacks a gzip\'d arm64 Image (Image.gz)', async () => {
    expect(await inspectKernelImage(file('Image.gz', gzipSync(arm64Image(1))))).toMatchObject({ format: 'arm64-image-gzip', pageSizeKiB: 4 });
  });

  it('refuses a zboot image with a compression it cannot unpack, naming it', async () => {
    const err = await kernelError(inspectKernelImage(file('zboot-lzma', zboot('lzma', Buffer.from('whatever')))));
    expect(err.message).toContain('"lzma"');
    expect(err.message).toContain('gzip and zstd');
  });

  it('refuses garbage with infra-kernel-invalid, naming the file and what was expected', async () => {
    const path = file('garbage.img', Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919) % 251)));
    const err = await kernelError(inspectKernelImage(path));
    expect(err.message).toContain(path);
    expect(err.message).toContain('"HdrS" at offset 0x202');
    expect(err.message).toContain('"ARM\\x64" at offset 0x38');
  });

  it('refuses an ELF program, an empty file, a gzip of garbage and a missing file', async () => {
    await kernelError(inspectKernelImage('/bin/true'));
    await kernelError(inspectKernelImage(file('empty', '')));
    expect((await kernelError(inspectKernelImage(file('junk.gz', gzipSync(Buffer.from('not a kernel')))))).message).toContain('payload is not an arm64 Image');
    expect((await kernelError(inspectKernelImage(join(dir, 'nope')))).message).toContain('ENOENT');
  });

  it('refuses a big-endian arm64 Image', async () => {
    expect((await kernelError(inspectKernelImage(file('be', arm64Image(1, { bigEndian: true }))))).message).toContain('big-endian');
  });
});

describe('reading kernel config files', () => {
  it('maps y, m, "not set" to n, unquotes strings and keeps numbers as written; absent symbols are absent', () => {
    const c = parseKernelConfig(CONFIG_16K);
    expect(c.get('CONFIG_ARM64_16K_PAGES')).toBe('y');
    expect(c.get('CONFIG_ARM64_4K_PAGES')).toBe('n');
    expect(c.get('CONFIG_BPF_LSM')).toBe('m');
    expect(c.get('CONFIG_LSM')).toBe('landlock,lockdown,yama,bpf');
    expect(c.get('CONFIG_ARM64_VA_BITS')).toBe('52');
    expect(c.get('CONFIG_ILLEGAL_POINTER_VALUE')).toBe('0xdead000000000000');
    expect(c.get('CONFIG_CC_VERSION_TEXT')).toBe('gcc "14"');
    expect(c.get('CONFIG_BPF_KPROBE_OVERRIDE')).toBeUndefined();
    expect(c.size).toBe(7);
  });

  it('refuses a file with no config symbols', async () => {
    const err = await kernelError(readKernelConfig(file('not-a-config', '# just a comment\nhello=world\n')));
    expect(err.message).toContain('CONFIG_BPF=y');
  });
});

describe('a user\'s own kernel file', () => {
  it('becomes an artifact with the arch, page size and release its header gives', async () => {
    const a = await fetchKernel({ kind: 'file', image: file('Image-16k', arm64Image(2, { release: '6.12.3-mine' })), config: file('config-16k', CONFIG_16K) });
    expect(a).toMatchObject({ arch: 'arm64', pageSizeKiB: 16, format: 'arm64-image', release: '6.12.3-mine', origin: 'cache', package: undefined });
    expect(a.image).toBe(join(dir, 'Image-16k'));
    expect(a.imageSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is unpacked into the cache once when it is a zboot image', async () => {
    const ref = { kind: 'file' as const, image: file('vmlinuz-zboot', zboot('gzip', gzipSync(arm64Image(1)))), config: file('config-4k', 'CONFIG_ARM64_4K_PAGES=y\n') };
    const a = await fetchKernel(ref);
    expect(a.image.startsWith(join(dir, 'cache', 'kernels', 'file'))).toBe(true);
    expect(identifyKernelImage(readFileSync(a.image))).toMatchObject({ kind: 'arm64-image', pageSizeKiB: 4 });
    expect(a.release).toBe('6.12.0-test-arm64');
  });

  it('takes the page size from the config when the header leaves it unspecified', async () => {
    const a = await fetchKernel({ kind: 'file', image: file('Image-old', arm64Image(0)), config: file('config-16k-b', CONFIG_16K) });
    expect(a.pageSizeKiB).toBe(16);
  });

  it('is refused when it is garbage, when its config is missing, or when it is for the other arch', async () => {
    const config = file('config-x86', 'CONFIG_X86_64=y\n');
    await kernelError(fetchKernel({ kind: 'file', image: file('vmlinuz-garbage', 'MZ this is not a kernel at all'.repeat(40)), config }));
    await kernelError(fetchKernel({ kind: 'file', image: file('vmlinuz-ok', bzImage('6.1.0-x')), config: join(dir, 'no-config') }));
    const err = await kernelError(fetchKernel({ kind: 'file', image: file('vmlinuz-x86', bzImage('6.1.0-x')), config }, { expectArch: 'arm64' }));
    expect(err.message).toContain('for x86_64, but the cell is arm64');
  });
});

describe(`the real Debian kernels of the default matrix (skipped when ${NO_REAL})`, () => {
  it.skipIf(real.size < 5)('have the formats and page sizes their headers promise', async () => {
    const expected: Record<string, [string, number]> = {
      'bookworm/linux-image-amd64': ['bzImage', 4],
      'trixie/linux-image-amd64': ['bzImage', 4],
      'bookworm/linux-image-arm64': ['arm64-image', 4],
      'trixie/linux-image-arm64': ['arm64-image', 4],
      'trixie/linux-image-arm64-16k': ['arm64-image', 16],
    };
    for (const [name, a] of real) {
      const info = await inspectKernelImage(a.image);
      expect([name, info.format, info.pageSizeKiB]).toEqual([name, ...(expected[name] ?? [])]);
      if (info.format === 'bzImage') expect(info.release).toBe(a.release);
    }
  });

  it.skipIf(real.size < 5)('have the configs the VM-lane findings measured', async () => {
    const config = async (name: string) => readKernelConfig((real.get(name) as KernelArtifact).config);
    for (const name of real.keys()) {
      const c = await config(name);
      expect([name, c.get('CONFIG_BPF_LSM'), c.get('CONFIG_DEBUG_INFO_BTF'), c.get('CONFIG_FUNCTION_ERROR_INJECTION'), c.get('CONFIG_IKCONFIG')]).toEqual([name, 'y', 'y', 'n', 'n']);
      expect(c.get('CONFIG_BPF_KPROBE_OVERRIDE')).toBeUndefined();
      expect(c.get('CONFIG_LSM')?.split(',')).toContain('bpf');
    }
    expect((await config('bookworm/linux-image-arm64')).get('CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS')).toBeUndefined();
    expect((await config('trixie/linux-image-arm64')).get('CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS')).toBe('y');
    expect((await config('trixie/linux-image-arm64-16k')).get('CONFIG_ARM64_16K_PAGES')).toBe('y');
    expect((await config('bookworm/linux-image-amd64')).get('CONFIG_FPROBE')).toBe('n');
    expect((await config('trixie/linux-image-amd64')).get('CONFIG_FPROBE')).toBe('y');
    expect((await config('trixie/linux-image-arm64')).get('CONFIG_FPROBE')).toBeUndefined();
  });

  it.skipIf(real.size === 0)('are recognised as user kernel files too', async () => {
    for (const a of real.values()) {
      const asFile = await fetchKernel({ kind: 'file', image: a.image, config: a.config });
      expect([asFile.arch, asFile.pageSizeKiB, asFile.imageSha256]).toEqual([a.arch, a.pageSizeKiB, a.imageSha256]);
    }
  });
});
