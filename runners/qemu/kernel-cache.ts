/**
 * The kernel cache: a kernel ref -> a bootable image and its config file on disk.
 * Debian kernels are resolved through the private apt, downloaded, and only
 * `./boot/vmlinuz-*` and `./boot/config-*` are extracted, under
 * `cacheDir('kernels', <sha256 of the .deb>)`. A user's kernel file is checked in place.
 *
 * Invariants:
 * - Content-addressed: a kernel directory is complete once its artifact.json exists
 *   (written last; the directory is renamed into place), and it never changes afterwards.
 * - A warm fetch (a lock entry, or a resolution made from fresh lists, pointing at cached
 *   bits) starts no process at all.
 * - Page size and arch come from the image header, never from the package name; an
 *   image that is not a kernel is an InfraError `infra-kernel-invalid` naming the file.
 * - Parallel fetches of one kernel in a process share one download and one extraction.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { cacheDir } from '../../core/cache.js';
import { InfraError } from '../../core/errors.js';
import type { Arch, DebianKernel, KernelRef, PageSize } from '../../matrix/cell.js';
import { kernelName } from '../../matrix/kernel-catalogue.js';
import { sha256File } from '../../core/download.js';
import { privateApt, type PrivateApt, type ResolvedPackage } from './apt.js';
import { findLocked, type LockFile, type LockedKernel } from './lockfile.js';

// ---------------------------------------------------------------------------------------
// Kernel image headers

/**
 * - `bzImage`: x86 boot protocol image ("HdrS" at 0x202), 4K pages.
 * - `arm64-image`: uncompressed arm64 Image ("ARM\x64" at 0x38); Debian ships these (P2).
 * - `arm64-image-gzip`: a gzip'd arm64 Image (Image.gz).
 * - `arm64-zboot`: an EFI zboot image (MZ + "zimg") with a gzip or zstd payload.
 * The compressed forms are unpacked into the cache and booted as plain Images.
 */
export type KernelImageFormat = 'bzImage' | 'arm64-image' | 'arm64-image-gzip' | 'arm64-zboot';

export interface KernelImageInfo {
  format: KernelImageFormat;
  arch: Arch;
  /** Undefined only for an arm64 Image whose header leaves the page size unspecified. */
  pageSizeKiB: PageSize | undefined;
  /** From the bzImage header or the Image's "Linux version" banner, when found. */
  release: string | undefined;
}

/** What the first bytes of a file say it is; pure. */
export type ImageIdentity =
  | { kind: 'bzImage'; release: string | undefined }
  | { kind: 'arm64-image'; pageSizeKiB: PageSize | undefined; bigEndian: boolean }
  | { kind: 'gzip' }
  | { kind: 'zboot'; compression: string; payloadOffset: number; payloadSize: number }
  | { kind: 'unknown' };

const ARM64_MAGIC = 0x644d5241; // "ARM\x64", little-endian u32 at 0x38
const ARM64_PAGE_SIZES: Record<number, PageSize | undefined> = { 0: undefined, 1: 4, 2: 16, 3: 64 };

/** Identifies a kernel image from its bytes (the whole file, or at least its first 4 KiB). */
export function identifyKernelImage(buf: Buffer): ImageIdentity {
  if (buf.length >= 0x210 && buf.toString('latin1', 0x202, 0x206) === 'HdrS') {
    // Boot protocol: kernel_version (u16 at 0x20e) points at a NUL-terminated string, minus 0x200.
    const ptr = buf.readUInt16LE(0x20e);
    let release: string | undefined;
    if (ptr > 0 && ptr + 0x200 < buf.length) {
      const end = buf.indexOf(0, ptr + 0x200);
      release = buf.toString('latin1', ptr + 0x200, end > 0 ? end : ptr + 0x300).split(' ')[0] || undefined;
    }
    return { kind: 'bzImage', release };
  }
  if (buf.length >= 0x40 && buf.readUInt32LE(0x38) === ARM64_MAGIC) {
    // Header flags (u64 at 24): bit 0 endianness, bits 1-2 page size (Documentation/arch/arm64/booting.rst).
    const flags = Number(buf.readBigUInt64LE(24) & 0xfn);
    return { kind: 'arm64-image', pageSizeKiB: ARM64_PAGE_SIZES[(flags >> 1) & 3], bigEndian: (flags & 1) === 1 };
  }
  if (buf.length >= 0x20 && buf.toString('latin1', 0, 2) === 'MZ' && buf.toString('latin1', 4, 8) === 'zimg') {
    // drivers/firmware/efi/libstub/zboot-header.S: payload offset and size, then the compression name.
    const nameEnd = buf.indexOf(0, 0x18);
    return {
      kind: 'zboot',
      payloadOffset: buf.readUInt32LE(8),
      payloadSize: buf.readUInt32LE(12),
      compression: buf.toString('latin1', 0x18, nameEnd > 0 && nameEnd < 0x40 ? nameEnd : 0x20),
    };
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return { kind: 'gzip' };
  return { kind: 'unknown' };
}

const EXPECTED_IMAGE =
  'expected an x86 bzImage ("HdrS" at offset 0x202), an arm64 Image ("ARM\\x64" at offset 0x38), ' +
  'a gzip\'d arm64 Image, or an arm64 EFI zboot image with a gzip or zstd payload';

function invalid(file: string, message: string, cause?: unknown): InfraError {
  return new InfraError('infra-kernel-invalid', `${file}: ${message}`, cause);
}

/** The "Linux version X" banner of an uncompressed image. */
function bannerRelease(image: Buffer): string | undefined {
  const at = image.indexOf('Linux version ');
  if (at < 0) return undefined;
  const text = image.toString('latin1', at + 14, at + 14 + 128);
  const release = /^([^\s\0]+)/.exec(text)?.[1];
  return release && /^\d+\.\d+/.test(release) ? release : undefined;
}

/**
 * Reads a kernel image file and says what it is. A compressed arm64 image (Image.gz,
 * EFI zboot) is unpacked and `image` is the uncompressed Image; otherwise `image` is
 * undefined (the file boots as is). Anything else is `infra-kernel-invalid`.
 */
export async function inspectKernelImage(file: string): Promise<KernelImageInfo & { image: Buffer | undefined }> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    throw invalid(file, `cannot read the kernel image (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${EXPECTED_IMAGE}`, err);
  }
  const id = identifyKernelImage(buf);
  switch (id.kind) {
    case 'bzImage':
      return { format: 'bzImage', arch: 'x86_64', pageSizeKiB: 4, release: id.release, image: undefined };
    case 'arm64-image':
      if (id.bigEndian) throw invalid(file, 'a big-endian arm64 Image: bpfgate boots little-endian guests only');
      return { format: 'arm64-image', arch: 'arm64', pageSizeKiB: id.pageSizeKiB, release: bannerRelease(buf), image: undefined };
    case 'gzip': {
      const inner = await unpack(file, 'gzip', buf);
      return { ...innerArm64(file, inner, 'arm64-image-gzip'), image: inner };
    }
    case 'zboot': {
      const payload = buf.subarray(id.payloadOffset, id.payloadOffset + id.payloadSize);
      if (id.payloadOffset <= 0 || id.payloadOffset + id.payloadSize > buf.length) {
        throw invalid(file, `an EFI zboot image whose payload (offset ${id.payloadOffset}, ${id.payloadSize} bytes) lies outside the file`);
      }
      const inner = await unpack(file, id.compression, payload);
      return { ...innerArm64(file, inner, 'arm64-zboot'), image: inner };
    }
    default:
      throw invalid(file, `not a kernel image; ${EXPECTED_IMAGE}`);
  }
}

function innerArm64(file: string, inner: Buffer, format: KernelImageFormat): KernelImageInfo {
  const id = identifyKernelImage(inner);
  if (id.kind !== 'arm64-image') throw invalid(file, `the compressed payload is not an arm64 Image; ${EXPECTED_IMAGE}`);
  if (id.bigEndian) throw invalid(file, 'a big-endian arm64 Image: bpfgate boots little-endian guests only');
  return { format, arch: 'arm64', pageSizeKiB: id.pageSizeKiB, release: bannerRelease(inner) };
}

async function unpack(file: string, compression: string, data: Buffer): Promise<Buffer> {
  if (compression === 'gzip') {
    try {
      return gunzipSync(data);
    } catch (err) {
      throw invalid(file, `the gzip payload does not decompress: ${(err as Error).message}`, err);
    }
  }
  if (compression === 'zstd') {
    // Node 20 has no zstd: the zstd tool is a documented host prerequisite.
    try {
      const { stdout } = await execa('zstd', ['-dc'], { input: data, encoding: 'buffer', maxBuffer: 1 << 30 });
      return Buffer.from(stdout);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw new InfraError('infra-tool-missing', 'zstd is not installed (apt-get install zstd)', err);
      throw invalid(file, `the zstd payload does not decompress: ${(err as Error).message}`, err);
    }
  }
  throw invalid(file, `an EFI zboot image compressed with "${compression}": bpfgate unpacks gzip and zstd payloads only`);
}

// ---------------------------------------------------------------------------------------
// Kernel config files

/** CONFIG_X -> 'y' | 'm' | 'n' | a string or number value (unquoted). Absent symbols are absent. */
export type KernelConfig = ReadonlyMap<string, string>;

/** Parses a kernel .config: `CONFIG_X=y|m|"str"|123`, `# CONFIG_X is not set` -> 'n'. */
export function parseKernelConfig(text: string): Map<string, string> {
  const config = new Map<string, string>();
  for (const line of text.split('\n')) {
    const off = /^# (CONFIG_[A-Za-z0-9_]+) is not set\s*$/.exec(line);
    if (off?.[1]) {
      config.set(off[1], 'n');
      continue;
    }
    const on = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line.trimEnd());
    if (!on?.[1]) continue;
    const raw = on[2] ?? '';
    config.set(on[1], raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  return config;
}

/** Reads and parses a kernel config file; unreadable or symbol-less files are `infra-kernel-invalid`. */
export async function readKernelConfig(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw invalid(path, `cannot read the kernel config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
  const config = parseKernelConfig(text);
  if (config.size === 0) throw invalid(path, 'not a kernel config file: expected lines like CONFIG_BPF=y or "# CONFIG_X is not set"');
  return config;
}

function pageSizeFromConfig(config: KernelConfig): PageSize | undefined {
  if (config.get('CONFIG_ARM64_64K_PAGES') === 'y') return 64;
  if (config.get('CONFIG_ARM64_16K_PAGES') === 'y') return 16;
  if (config.get('CONFIG_ARM64_4K_PAGES') === 'y') return 4;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Artifacts

export interface KernelArtifact {
  ref: KernelRef;
  /** Catalogue-style name, e.g. `trixie/linux-image-arm64-16k`. */
  name: string;
  /** The real package (Debian kernels only). */
  package: string | undefined;
  version: string | undefined;
  suite: string | undefined;
  /** Pool path of the .deb (Debian kernels only). */
  filename: string | undefined;
  debSha256: string | undefined;
  /** The image QEMU boots (an unpacked Image when the original was compressed). */
  image: string;
  config: string;
  /** `uname -r` of the kernel, e.g. 6.1.0-56-arm64 (`unknown` for a user's image that does not say). */
  release: string;
  /** sha256 of the image as shipped (the .deb's vmlinuz, or the user's file). */
  imageSha256: string;
  configSha256: string;
  imageBytes: number;
  arch: Arch;
  pageSizeKiB: PageSize;
  format: KernelImageFormat;
  /** How this call got it: from the cache, or by downloading (or unpacking) it now. */
  origin: 'cache' | 'download';
}

/** What artifact.json holds: the artifact minus what depends on the caller or the cache root. */
type KernelManifest = Omit<KernelArtifact, 'ref' | 'name' | 'image' | 'config' | 'origin'> & { image: string; config: string };

const MANIFEST = 'artifact.json';

async function readManifest(dir: string): Promise<KernelManifest | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as KernelManifest;
  } catch {
    return undefined;
  }
}

function toArtifact(ref: KernelRef, dir: string, m: KernelManifest, origin: KernelArtifact['origin']): KernelArtifact {
  return { ...m, ref, name: kernelName(ref), image: join(dir, m.image), config: join(dir, m.config), origin };
}

export interface FetchKernelOptions {
  /** Use exactly the versions of this lock file (Debian kernels it lists). */
  lock?: LockFile;
  /** The private apt to use; defaults to the process-wide one. */
  apt?: PrivateApt;
  /** Progress and warnings, one line each. */
  onProgress?: (line: string) => void;
  /** Keep the downloaded .deb in cacheDir('debs') (default: removed once extracted). */
  keepDeb?: boolean;
  /** For a user's kernel: the arch the cell expects; a different image is `infra-kernel-invalid`. */
  expectArch?: Arch;
}

const inFlight = new Map<string, Promise<KernelArtifact>>();

/**
 * The kernel of a ref, on disk. Debian kernels: the lock entry's version when a lock is
 * given (its sha256 verified), else the newest in the suite's family; downloaded and
 * extracted once. File kernels: the image is checked (and unpacked when compressed).
 */
export async function fetchKernel(ref: KernelRef, opts: FetchKernelOptions = {}): Promise<KernelArtifact> {
  if (ref.kind === 'file') return fileKernel(ref, opts);
  if (ref.kind === 'running') throw new InfraError('infra-kernel-invalid', `${kernelName(ref)}: a kernel a cluster node already runs cannot be fetched or booted`);
  const locked = findLocked(opts.lock, ref);
  if (locked) {
    const hit = await cachedByDeb(ref, locked.sha256);
    if (hit) {
      checkAgainstLock(hit, locked);
      return hit;
    }
  }
  const apt = opts.apt ?? (await privateApt({ onLog: opts.onProgress ?? (() => {}) }));
  let resolved: ResolvedPackage;
  try {
    resolved = locked
      ? await apt.resolve(locked.package, ref.suite, ref.debArch, { version: locked.version })
      : await apt.resolve(ref.package, ref.suite, ref.debArch);
  } catch (err) {
    // Offline with lists that could not be refreshed: the last kernel fetched for this ref will do.
    const previous = locked ? undefined : await lastFetched(ref);
    if (previous && err instanceof InfraError) {
      opts.onProgress?.(`warn: ${kernelName(ref)}: ${err.message}; using the cached ${previous.version}`);
      return previous;
    }
    throw err;
  }
  if (locked && resolved.sha256 !== locked.sha256) {
    throw new InfraError(
      'infra-download',
      `${kernelName(ref)}: the archive's ${resolved.package} ${resolved.version} has sha256 ${resolved.sha256}, the lock file says ${locked.sha256}`,
    );
  }
  const key = resolved.sha256;
  let pending = inFlight.get(key);
  if (!pending) {
    pending = materialise(ref, resolved, apt, opts).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  const artifact = { ...(await pending), ref, name: kernelName(ref) };
  if (locked) checkAgainstLock(artifact, locked);
  await rememberRef(ref, artifact);
  return artifact;
}

/**
 * The kernel of a ref if it is already in the cache, found without network or apt
 * (through the lock entry, a fresh resolution, or the last fetch of this ref).
 */
export async function cachedKernel(ref: KernelRef, opts: { lock?: LockFile; apt?: PrivateApt } = {}): Promise<KernelArtifact | undefined> {
  if (ref.kind !== 'debian') return undefined;
  const locked = findLocked(opts.lock, ref);
  if (locked) return cachedByDeb(ref, locked.sha256);
  const memo = await opts.apt?.memoized(ref.package, ref.suite, ref.debArch);
  if (memo) return cachedByDeb(ref, memo.sha256);
  return lastFetched(ref);
}

function checkAgainstLock(artifact: KernelArtifact, locked: LockedKernel): void {
  for (const [what, got, want] of [
    ['image', artifact.imageSha256, locked.imageSha256],
    ['config', artifact.configSha256, locked.configSha256],
  ] as const) {
    if (got !== want) {
      throw new InfraError('infra-kernel-invalid', `${locked.name}: the ${what} of ${locked.package} ${locked.version} has sha256 ${got}, the lock file says ${want}`);
    }
  }
}

async function kernelsRoot(): Promise<string> {
  return cacheDir('kernels');
}

async function cachedByDeb(ref: KernelRef, debSha256: string): Promise<KernelArtifact | undefined> {
  const dir = join(await kernelsRoot(), debSha256);
  const manifest = await readManifest(dir);
  return manifest ? toArtifact(ref, dir, manifest, 'cache') : undefined;
}

function refFile(root: string, ref: DebianKernel): string {
  return join(root, 'refs', `${kernelName(ref).replace(/[^A-Za-z0-9.+-]/g, '_')}.json`);
}

async function rememberRef(ref: DebianKernel, artifact: KernelArtifact): Promise<void> {
  const file = refFile(await kernelsRoot(), ref);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, JSON.stringify({ debSha256: artifact.debSha256, package: artifact.package, version: artifact.version, at: Date.now() }));
}

async function lastFetched(ref: DebianKernel): Promise<KernelArtifact | undefined> {
  try {
    const { debSha256 } = JSON.parse(await readFile(refFile(await kernelsRoot(), ref), 'utf8')) as { debSha256: string };
    return await cachedByDeb(ref, debSha256);
  } catch {
    return undefined;
  }
}

/** Download (or reuse) the .deb, extract ./boot, inspect, and move the directory into place. */
async function materialise(ref: DebianKernel, resolved: ResolvedPackage, apt: PrivateApt, opts: FetchKernelOptions): Promise<KernelArtifact> {
  const root = await kernelsRoot();
  const dir = join(root, resolved.sha256);
  const hit = await cachedByDeb(ref, resolved.sha256);
  if (hit) return hit;
  if (!(await apt.hasDeb(resolved))) opts.onProgress?.(`download ${resolved.package} ${resolved.version} (${(resolved.size / 1e6).toFixed(1)} MB)`);
  const deb = await apt.download(resolved);
  const staging = join(root, `.tmp-${resolved.sha256.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { recursive: true });
  try {
    await extractBoot(deb, staging, resolved.package.startsWith('linux-image-') ? resolved.package.slice('linux-image-'.length) : undefined);
    const boot = join(staging, 'boot');
    const names = existsSync(boot) ? await readdir(boot) : [];
    const vmlinuz = names.filter((n) => n.startsWith('vmlinuz-'));
    const configs = names.filter((n) => n.startsWith('config-'));
    if (vmlinuz.length !== 1 || configs.length !== 1) {
      throw invalid(deb, `expected one ./boot/vmlinuz-* and one ./boot/config-* in ${resolved.package}, found ${[...vmlinuz, ...configs].join(', ') || 'none'}`);
    }
    const imageFile = join(boot, vmlinuz[0] as string);
    const configFile = join(boot, configs[0] as string);
    const info = await describeImage(imageFile, configFile, staging);
    if (info.arch !== debArchToArch(resolved.debArch)) {
      throw invalid(imageFile, `${resolved.package} (${resolved.debArch}) holds a ${info.format} image for ${info.arch}`);
    }
    const manifest: KernelManifest = {
      package: resolved.package,
      version: resolved.version,
      suite: resolved.suite,
      filename: resolved.filename,
      debSha256: resolved.sha256,
      image: relative(staging, info.bootImage),
      config: relative(staging, configFile),
      release: (vmlinuz[0] as string).slice('vmlinuz-'.length),
      imageSha256: info.imageSha256,
      configSha256: await sha256File(configFile),
      imageBytes: (await stat(imageFile)).size,
      arch: info.arch,
      pageSizeKiB: info.pageSizeKiB,
      format: info.format,
    };
    await writeFile(join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    try {
      await rename(staging, dir);
    } catch (err) {
      // Another process finished the same kernel first: its directory is as good as ours.
      if (!(await readManifest(dir))) throw err;
    }
    if (!opts.keepDeb) await rm(deb, { force: true });
    const done = await readManifest(dir);
    if (!done) throw invalid(dir, 'the kernel directory has no artifact.json after extraction');
    return toArtifact(ref, dir, done, 'download');
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function debArchToArch(debArch: 'amd64' | 'arm64'): Arch {
  return debArch === 'amd64' ? 'x86_64' : 'arm64';
}

/**
 * `dpkg-deb --fsys-tarfile X.deb | tar -x ./boot/vmlinuz-* ./boot/config-*` (findings §2).
 * Debian's image packages are named after the release (`linux-image-<release>`) and keep
 * ./boot first in their data archive: naming both members exactly with `--occurrence=1`
 * lets tar stop there instead of decompressing every module (0.3 s instead of 5 s). When
 * that finds nothing, the whole archive is scanned with wildcards.
 */
export async function extractBoot(deb: string, into: string, release: string | undefined): Promise<void> {
  if (release) {
    const members = [`./boot/vmlinuz-${release}`, `./boot/config-${release}`];
    const tar = await untar(deb, into, ['--occurrence=1', ...members]);
    // dpkg-deb dies of SIGPIPE once tar has what it wants: only tar's verdict counts here.
    if (tar.exitCode === 0 && members.every((m) => existsSync(join(into, m)))) return;
    await rm(join(into, 'boot'), { recursive: true, force: true });
  }
  const tar = await untar(deb, into, ['--wildcards', './boot/vmlinuz-*', './boot/config-*'], true);
  if (tar.exitCode !== 0) {
    throw invalid(deb, `cannot extract ./boot from the package: tar exited ${tar.exitCode}: ${String(tar.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

async function untar(deb: string, into: string, selection: string[], wholeArchive = false) {
  // The tar stream is hundreds of MB (modules): stream it, never buffer it.
  const source = execa('dpkg-deb', ['--fsys-tarfile', deb], { buffer: { stdout: false }, reject: false });
  const tar = await source.pipe('tar', ['-x', '-C', into, ...selection], { reject: false });
  const src = await source;
  for (const r of [src, tar]) {
    if (r.code === 'ENOENT') throw new InfraError('infra-tool-missing', 'dpkg-deb and tar are needed to unpack kernel packages (apt-get install dpkg tar)', r);
  }
  if (wholeArchive && src.exitCode !== 0) {
    throw invalid(deb, `dpkg-deb cannot read the package (exit ${src.exitCode ?? src.signal}): ${String(src.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  }
  return tar;
}

/**
 * Inspects an image and its config; a compressed arm64 image is unpacked beside it.
 * Returns the image to boot, its page size (header first, config when the header says
 * nothing) and the sha256 of the image as shipped.
 */
async function describeImage(
  imageFile: string,
  configFile: string,
  unpackDir: string,
): Promise<{ format: KernelImageFormat; arch: Arch; pageSizeKiB: PageSize; release: string | undefined; bootImage: string; imageSha256: string }> {
  const info = await inspectKernelImage(imageFile);
  const config = await readKernelConfig(configFile);
  const pageSizeKiB = info.pageSizeKiB ?? pageSizeFromConfig(config);
  if (pageSizeKiB === undefined) {
    throw invalid(imageFile, 'the arm64 Image header does not say its page size and the config sets no CONFIG_ARM64_*K_PAGES');
  }
  let bootImage = imageFile;
  if (info.image) {
    await mkdir(unpackDir, { recursive: true });
    bootImage = join(unpackDir, 'Image');
    if (!existsSync(bootImage) || (await stat(bootImage)).size !== info.image.length) await writeFile(bootImage, info.image);
  }
  return { format: info.format, arch: info.arch, pageSizeKiB, release: info.release, bootImage, imageSha256: await sha256File(imageFile) };
}

/** A user's kernel: checked in place; a compressed arm64 image is unpacked into the cache once. */
async function fileKernel(ref: Extract<KernelRef, { kind: 'file' }>, opts: FetchKernelOptions): Promise<KernelArtifact> {
  if (!existsSync(ref.image)) throw invalid(ref.image, `the kernel image does not exist; ${EXPECTED_IMAGE}`);
  const imageSha256 = await sha256File(ref.image);
  const unpackDir = join(await cacheDir('kernels', 'file'), imageSha256);
  const info = await describeImage(ref.image, ref.config, unpackDir);
  if (info.bootImage === ref.image) await rm(unpackDir, { recursive: true, force: true });
  if (opts.expectArch && opts.expectArch !== info.arch) {
    throw invalid(ref.image, `a ${info.format} image for ${info.arch}, but the cell is ${opts.expectArch}`);
  }
  const configText = await readFile(ref.config, 'utf8');
  const release = info.release ?? /^# Linux\/\S+ (\S+) Kernel Configuration/m.exec(configText)?.[1] ?? 'unknown';
  return {
    ref,
    name: kernelName(ref),
    package: undefined,
    version: undefined,
    suite: undefined,
    filename: undefined,
    debSha256: undefined,
    image: info.bootImage,
    config: ref.config,
    release,
    imageSha256,
    configSha256: await sha256File(ref.config),
    imageBytes: (await stat(ref.image)).size,
    arch: info.arch,
    pageSizeKiB: info.pageSizeKiB,
    format: info.format,
    origin: info.bootImage === ref.image ? 'cache' : 'download',
  };
}

/** The kernel directories in the cache (for `kernels list` and cleanup). */
export async function cachedKernelDirs(): Promise<string[]> {
  const root = await kernelsRoot();
  const names = await readdir(root);
  const out: string[] = [];
  for (const n of names) if (/^[0-9a-f]{64}$/.test(n) && existsSync(join(root, n, MANIFEST))) out.push(join(root, n));
  return out;
}

