/**
 * Guest images: one small initramfs (gzip'd newc cpio) per arch, the userland of every
 * QEMU cell: busybox, bpftool with its libraries, the project's BPF objects, and the
 * overlay tree guest/rootfs (whose /init is PID 1). The kernel lane's image (family
 * `guest`) also carries the USDT program (guest/usdt) at the paths the example policies
 * name, and an index of the uprobe offsets of its ELF files (uprobe-index.ts), so a guest
 * attaches uprobes and USDTs without an ELF reader. Per-cell files go into a separate
 * overlay archive that is appended to the base image (`buildOverlay`), so the base
 * image stays cached.
 *
 * Invariants:
 * - Cached by the hash of its inputs: the packages (versions and sha256), the bytes
 *   and modes of guest/rootfs/**, the bytes of guest/bpf/*, the clang version, the libbpf
 *   headers and the layout version below. A warm build runs only `clang --version`.
 * - Userland comes from Debian packages of the guest's arch, downloaded through the
 *   private apt (for both arches alike), never from the host's installed files.
 * - Every dynamic binary's DT_NEEDED libraries and its interpreter are resolved from the
 *   packages marked `libraries`; a library none of them provides fails the build, naming it.
 * - The package list is data: later lanes add tools by adding entries.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve as resolvePath } from 'node:path';
import { PACKAGE_ROOT } from '../../core/assets.js';
import { InfraError } from '../../core/errors.js';
import { cacheDir } from '../../core/cache.js';
import { DEBIAN_ARCH, type Arch } from '../../matrix/cell.js';
import { privateApt, type PrivateApt, type ResolvedPackage } from './apt.js';
import { assertToolOk, runHostTool } from './host-tools.js';
import { packDirectory, stagedEntries } from './cpio.js';
import { buildUprobeIndex, UPROBE_INDEX_PATH, UPROBE_INDEX_VERSION } from './uprobe-index.js';
import { sha256File } from '../../core/download.js';

/** Bump when the way an image is assembled changes, so cached images are rebuilt. */
export const GUEST_IMAGE_LAYOUT_VERSION = 3;

/** A file taken from a package: its path inside the package -> its path in the guest. */
export interface GuestFileTake {
  from: string;
  to: string;
  /** An ELF executable: its shared libraries and interpreter are added too. */
  binary?: boolean;
  /** Symlinks to `to` at these guest paths (`bin/bash`: /bin is /usr/bin on a usrmerged Debian). */
  links?: string[];
}

/** A Debian package that contributes to the guest image. */
export interface GuestPackageSpec {
  package: string;
  /** Suite (family) to resolve it in, e.g. bookworm, bookworm-backports. */
  suite: string;
  take?: GuestFileTake[];
  /** Its shared libraries (lib/<triplet>, usr/lib/<triplet>) may satisfy DT_NEEDED. */
  libraries?: boolean;
}

/**
 * The default guest userland (findings §4). bpftool comes from bookworm-backports: 7.5
 * has `autoattach` and needs only bookworm's libc (P4). The libraries are bookworm's, for
 * both arches (P12).
 */
export const GUEST_PACKAGES: readonly GuestPackageSpec[] = [
  { package: 'busybox-static', suite: 'bookworm', take: [{ from: 'bin/busybox', to: 'bin/busybox', binary: true }] },
  { package: 'bpftool', suite: 'bookworm-backports', take: [{ from: 'usr/sbin/bpftool', to: 'usr/sbin/bpftool', binary: true }] },
  { package: 'libc6', suite: 'bookworm', libraries: true },
  { package: 'libelf1', suite: 'bookworm', libraries: true },
  { package: 'zlib1g', suite: 'bookworm', libraries: true },
  { package: 'libcap2', suite: 'bookworm', libraries: true },
  // Trigger tools: perl-base for raw syscalls (memfd_create, ptrace, setns, bpf, ...), strace for ptrace.
  { package: 'perl-base', suite: 'bookworm', take: [{ from: 'usr/bin/perl', to: 'usr/bin/perl', binary: true }] },
  { package: 'libcrypt1', suite: 'bookworm', libraries: true },
  { package: 'strace', suite: 'bookworm', take: [{ from: 'usr/bin/strace', to: 'usr/bin/strace', binary: true }] },
  { package: 'libunwind8', suite: 'bookworm', libraries: true },
  { package: 'liblzma5', suite: 'bookworm', libraries: true },
  // What the example uprobe policies name: bash's readline, main and _start. Debian's
  // usrmerged layout has it at /usr/bin/bash, and /bin/bash is the same file (/bin is a
  // real directory of busybox applets here, so a symlink stands for /bin -> usr/bin).
  // libc is in the image already, at /lib/<triplet>/libc.so.6 as Debian keeps it.
  { package: 'bash', suite: 'bookworm', take: [{ from: 'bin/bash', to: 'usr/bin/bash', binary: true, links: ['bin/bash'] }] },
  { package: 'libtinfo6', suite: 'bookworm', libraries: true },
];

/** GNU triplets: where a Debian package of the arch keeps its libraries. */
export const TRIPLET: Record<Arch, string> = { x86_64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/** readelf's "Machine:" for each arch. */
const ELF_MACHINE: Record<Arch, string> = { x86_64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };

/** bpf_tracing.h's arch switch, so PT_REGS_* macros work in the project's probes. */
const BPF_TARGET_ARCH: Record<Arch, string> = { x86_64: 'x86', arm64: 'arm64' };

/** Directories every guest has, even before /init mounts anything on them. */
const GUEST_DIRS = ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'mnt', 'bpf', 'root'];

export interface GuestImage {
  arch: Arch;
  /** The gzip'd newc archive to pass as -initrd (after appending a cell's overlay). */
  path: string;
  sha256: string;
  bytes: number;
  inputsHash: string;
  packages: { package: string; version: string; suite: string; sha256: string }[];
  /** The BPF objects in the image, e.g. /bpf/kprobe.bpf.o. */
  bpfObjects: string[];
  /** Every path in the archive, sorted. */
  entries: string[];
  /** How this call got it: from the cache, or built now. */
  origin: 'cache' | 'build';
}

export interface GuestImageOptions {
  packages?: readonly GuestPackageSpec[];
  /** Defaults to <project>/guest/rootfs. */
  rootfsDir?: string;
  /** Defaults to <project>/guest/bpf. */
  bpfDir?: string;
  /**
   * The USDT program's sources. The kernel lane's family (`guest`) defaults to
   * <project>/guest/usdt; an image with a USDT directory also gets the uprobe index.
   */
  usdtDir?: string;
  apt?: PrivateApt;
  onProgress?: (line: string) => void;
  /** Host files added as they are (a kubelet, image archives), hashed into the cache key. */
  extraFiles?: readonly { from: string; to: string; mode?: number }[];
  /** gzip the archive (default); a big image boots faster uncompressed under TCG. */
  compress?: boolean;
  /** Tells image families apart in the cache (default `guest`: the kernel lane's). */
  family?: string;
}

const inFlight = new Map<string, Promise<GuestImage>>();

/**
 * The base guest image of an arch: from the cache when its inputs are unchanged, else
 * built (packages downloaded, BPF objects compiled, archive packed) and cached.
 */
export async function buildGuestImage(arch: Arch, options: GuestImageOptions = {}): Promise<GuestImage> {
  const kernelLane = (options.family ?? 'guest') === 'guest';
  const opts = { ...options, usdtDir: options.usdtDir ?? (kernelLane ? USDT_SOURCE_DIR : undefined) };
  const specs = opts.packages ?? GUEST_PACKAGES;
  const rootfsDir = opts.rootfsDir ?? join(PACKAGE_ROOT, 'guest', 'rootfs');
  const bpfDir = opts.bpfDir ?? join(PACKAGE_ROOT, 'guest', 'bpf');
  if (!existsSync(join(rootfsDir, 'init'))) {
    throw new InfraError('infra-guest-build', `${join(rootfsDir, 'init')} is missing: the guest overlay tree must provide /init`);
  }
  const apt = opts.apt ?? (await privateApt({ onLog: opts.onProgress ?? (() => {}) }));
  const debArch = DEBIAN_ARCH[arch];
  const resolved = await Promise.all(specs.map((s) => apt.resolve(s.package, s.suite, debArch)));
  const inputs = await imageInputs(arch, specs, resolved, rootfsDir, bpfDir, opts);
  const family = opts.family ?? 'guest';
  const dir = join(await cacheDir(family), `${arch}-${inputs.hash.slice(0, 16)}`);
  const cached = await readImageManifest(dir);
  if (cached) {
    // A use counts as new: pruning goes by last use, so an image a run is using is never the oldest.
    const now = new Date();
    await utimes(dir, now, now).catch(() => {});
    return { ...cached, path: join(dir, IMAGE_FILE), origin: 'cache' };
  }
  let pending = inFlight.get(dir);
  if (!pending) {
    pending = assemble(arch, specs, resolved, inputs, rootfsDir, bpfDir, dir, apt, opts).finally(() => inFlight.delete(dir));
    inFlight.set(dir, pending);
  }
  return pending;
}

const IMAGE_FILE = 'initramfs.cpio.gz';
const MANIFEST_FILE = 'guest-image.json';

type ImageManifest = Omit<GuestImage, 'path' | 'origin'>;

async function readImageManifest(dir: string): Promise<ImageManifest | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as ImageManifest;
    return existsSync(join(dir, IMAGE_FILE)) ? manifest : undefined;
  } catch {
    return undefined;
  }
}

interface ImageInputs {
  hash: string;
  clang: string;
}

/** Everything that shapes the image bytes, hashed. */
async function imageInputs(
  arch: Arch,
  specs: readonly GuestPackageSpec[],
  resolved: ResolvedPackage[],
  rootfsDir: string,
  bpfDir: string,
  opts: GuestImageOptions = {},
): Promise<ImageInputs> {
  const clang = await clangIdentity();
  const hash = createHash('sha256');
  const add = (label: string, value: string | Buffer) => {
    hash.update(`${label}\0`);
    hash.update(value);
    hash.update('\0');
  };
  add('layout', String(GUEST_IMAGE_LAYOUT_VERSION));
  add('arch', arch);
  specs.forEach((s, i) => add('package', JSON.stringify({ spec: s, version: resolved[i]?.version, sha256: resolved[i]?.sha256 })));
  for (const rel of await stagedEntries(rootfsDir)) {
    const st = await lstat(join(rootfsDir, rel));
    add('rootfs', `${rel} ${(st.mode & 0o7777).toString(8)} ${st.isSymbolicLink() ? 'l' : st.isDirectory() ? 'd' : 'f'}`);
    if (st.isSymbolicLink()) add('rootfs-link', await readlink(join(rootfsDir, rel)));
    else if (st.isFile()) add('rootfs-file', await readFile(join(rootfsDir, rel)));
  }
  await addFiles(bpfDir, add, 'bpf ');
  add('clang', clang);
  if (opts.usdtDir) {
    add('usdt', await usdtProgramIdentity(opts.usdtDir));
    add('uprobe-index', String(UPROBE_INDEX_VERSION));
  }
  for (const f of opts.extraFiles ?? []) add(`extra ${f.to} ${(f.mode ?? 0o755).toString(8)}`, await sha256File(f.from));
  add('compress', String(opts.compress ?? true));
  return { hash: hash.digest('hex'), clang };
}

/** Every regular file under `dir` (sorted) given to `add` as its relative path and bytes: a source tree's share of a cache key. */
async function addFiles(dir: string, add: (label: string, bytes: Buffer) => void, prefix = ''): Promise<void> {
  for (const rel of existsSync(dir) ? await stagedEntries(dir) : []) {
    if ((await lstat(join(dir, rel))).isFile()) add(`${prefix}${rel}`, await readFile(join(dir, rel)));
  }
}

/** A host tool's identity, asked once per process; asked again after a failure. */
function memoized(ask: () => Promise<string>): () => Promise<string> {
  let memo: Promise<string> | undefined;
  return () => {
    if (!memo) {
      memo = ask();
      memo.catch(() => (memo = undefined));
    }
    return memo;
  };
}

/** clang's version line plus the libbpf headers' hash: both shape the BPF objects. */
const clangIdentity = memoized(async () => {
  const headers = ['bpf_helpers.h', 'bpf_helper_defs.h', 'bpf_tracing.h'].map((h) => join('/usr/include/bpf', h));
  if (!existsSync(headers[0] as string)) {
    throw new InfraError('infra-tool-missing', 'libbpf headers (/usr/include/bpf/bpf_helpers.h) are missing (apt-get install libbpf-dev)');
  }
  const result = await runHostTool('clang', ['--version'], { providedBy: 'clang' });
  assertToolOk(result, 'infra-tool-missing', 'clang --version');
  const hash = createHash('sha256');
  for (const h of headers) if (existsSync(h)) hash.update(await readFile(h));
  return `${String(result.stdout).split('\n')[0]} libbpf-headers=${hash.digest('hex').slice(0, 16)}`;
});

/**
 * Lays the packages' files out in `image`: each `take` copied to its place, and every
 * shared library the binaries need (transitively), with the interpreter they request,
 * from the packages marked `libraries`. The same userland serves a guest image and a
 * container image. `work` is scratch space for the unpacked packages.
 */
export async function stageUserland(
  arch: Arch,
  specs: readonly GuestPackageSpec[],
  resolved: readonly ResolvedPackage[],
  debs: readonly string[],
  image: string,
  work: string,
): Promise<void> {
  // Unpack every package whole: they are small, and libraries may come from any of them.
  const pkgRoots: string[] = [];
  for (const [i, deb] of debs.entries()) {
    const into = join(work, `${i}-${specs[i]?.package}`);
    await mkdir(into, { recursive: true });
    const r = await runHostTool('dpkg-deb', ['-x', deb, into], { providedBy: 'dpkg' });
    assertToolOk(r, 'infra-guest-build', `dpkg-deb -x ${deb}`);
    pkgRoots.push(into);
  }
  const libs = await libraryIndex(arch, specs, pkgRoots);
  const binaries: string[] = [];
  for (const [i, spec] of specs.entries()) {
    for (const take of spec.take ?? []) {
      const source = await resolveInRoot(pkgRoots[i] as string, take.from);
      if (!source) {
        throw new InfraError('infra-guest-build', `${spec.package} ${resolved[i]?.version} (${DEBIAN_ARCH[arch]}) has no ${take.from}`);
      }
      const target = join(image, take.to);
      await mkdir(dirname(target), { recursive: true });
      await copyFile(source, target);
      await chmod(target, (await stat(source)).mode & 0o7777);
      if (take.binary) binaries.push(target);
      for (const link of take.links ?? []) {
        const at = join(image, link);
        await mkdir(dirname(at), { recursive: true });
        await rm(at, { force: true });
        await symlink(`/${posix.normalize(take.to)}`, at);
      }
    }
  }
  await addSharedLibraries(arch, image, binaries, libs);
}

async function assemble(
  arch: Arch,
  specs: readonly GuestPackageSpec[],
  resolved: ResolvedPackage[],
  inputs: ImageInputs,
  rootfsDir: string,
  bpfDir: string,
  dir: string,
  apt: PrivateApt,
  opts: GuestImageOptions,
): Promise<GuestImage> {
  const started = Date.now();
  opts.onProgress?.(`build guest image ${arch} (${specs.map((s, i) => `${s.package} ${resolved[i]?.version}`).join(', ')})`);
  const debs = await apt.downloadAll(resolved);
  const work = await mkdtemp(join(tmpdir(), `bpfgate-guest-${arch}-`));
  try {
    const image = join(work, 'root');
    await mkdir(image, { recursive: true });
    for (const d of GUEST_DIRS) await mkdir(join(image, d), { recursive: true, mode: 0o755 });

    await stageUserland(arch, specs, resolved, debs, image, join(work, 'pkg'));

    const bpfObjects = await compileBpfObjects(bpfDir, join(image, 'bpf'), arch);
    await copyTree(rootfsDir, image);
    for (const f of opts.extraFiles ?? []) {
      const target = join(image, f.to);
      await mkdir(dirname(target), { recursive: true });
      await copyFile(f.from, target);
      await chmod(target, f.mode ?? 0o755);
    }
    if (opts.usdtDir) {
      await compileUsdtProgram(opts.usdtDir, image, arch);
      const index = join(image, UPROBE_INDEX_PATH);
      await mkdir(dirname(index), { recursive: true });
      await writeFile(index, await buildUprobeIndex(image));
    }

    const out = join(work, IMAGE_FILE);
    const packed = await packDirectory(image, out, opts.compress === false ? { gzipLevel: 0 } : {});
    const manifest: ImageManifest = {
      arch,
      sha256: packed.sha256,
      bytes: packed.bytes,
      inputsHash: inputs.hash,
      packages: resolved.map((r) => ({ package: r.package, version: r.version, suite: r.suite, sha256: r.sha256 })),
      bpfObjects: bpfObjects.map((o) => `/bpf/${o}`),
      entries: packed.entries,
    };
    // Into the cache: the image first, the manifest last (its presence means complete).
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${IMAGE_FILE}.tmp-${process.pid}`);
    await copyFile(out, tmp);
    await rename(tmp, join(dir, IMAGE_FILE));
    await writeFile(join(dir, `${MANIFEST_FILE}.tmp-${process.pid}`), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(join(dir, `${MANIFEST_FILE}.tmp-${process.pid}`), join(dir, MANIFEST_FILE));
    await pruneOldImages(arch, dir);
    opts.onProgress?.(`built guest image ${arch}: ${(packed.bytes / 1e6).toFixed(2)} MB in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { ...manifest, path: join(dir, IMAGE_FILE), origin: 'build' };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** An image unused this long may go; a run that started before may still be booting it. */
const PRUNE_UNUSED_MS = 24 * 3600_000;

/**
 * Keeps the three most recently used cached images of an arch (BPF edits make new ones),
 * and any used within a day: another bpfgate run (another checkout, another version) may be
 * booting it right now, and removing it under that run fails its next boot.
 */
async function pruneOldImages(arch: Arch, keep: string): Promise<void> {
  const root = dirname(keep);
  const dirs = (await readdir(root)).filter((n) => n.startsWith(`${arch}-`)).map((n) => join(root, n));
  const dated = await Promise.all(dirs.map(async (d) => ({ d, t: (await stat(d)).mtimeMs })));
  dated.sort((a, b) => b.t - a.t);
  const cutoff = Date.now() - PRUNE_UNUSED_MS;
  for (const { d, t } of dated.slice(3)) if (d !== keep && t < cutoff) await rm(d, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// Shared libraries

interface LibraryFile {
  soname: string;
  path: string;
  /** The package it came from, for messages. */
  from: string;
}

/** soname -> file, over the library directories of the packages marked `libraries`. */
async function libraryIndex(arch: Arch, specs: readonly GuestPackageSpec[], pkgRoots: string[]): Promise<Map<string, LibraryFile>> {
  const triplet = TRIPLET[arch];
  const index = new Map<string, LibraryFile>();
  for (const [i, spec] of specs.entries()) {
    if (!spec.libraries) continue;
    const root = pkgRoots[i] as string;
    for (const libDir of [`lib/${triplet}`, `usr/lib/${triplet}`, 'lib', 'usr/lib', 'lib64']) {
      if (!existsSync(join(root, libDir))) continue;
      for (const name of await readdir(join(root, libDir))) {
        if (!/\.so(\.\d+)*$/.test(name) || index.has(name)) continue;
        const path = await resolveInRoot(root, `${libDir}/${name}`);
        if (path) index.set(name, { soname: name, path, from: spec.package });
      }
    }
  }
  return index;
}

/**
 * Resolves a path inside an unpacked package, following symlinks (absolute ones relative
 * to the package root, never the host's). Returns the regular file, or undefined.
 */
async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  let rel = posix.normalize(path.replace(/^\/+/, ''));
  for (let hops = 0; hops < 16; hops++) {
    const full = join(root, rel);
    let st;
    try {
      st = await lstat(full);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) return st.isFile() ? full : undefined;
    const target = await readlink(full);
    rel = posix.normalize(target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(rel), target));
    if (rel.startsWith('..')) return undefined;
  }
  return undefined;
}

interface ElfFacts {
  machine: string;
  interpreter: string | undefined;
  needed: string[];
}

/** The facts readelf (binutils) gives about an ELF file: machine, interpreter, DT_NEEDED. */
export async function readElf(file: string): Promise<ElfFacts> {
  const r = await runHostTool('readelf', ['-W', '-h', '-l', '-d', file], { providedBy: 'binutils' });
  assertToolOk(r, 'infra-guest-build', `readelf ${file}`);
  const out = String(r.stdout);
  return {
    machine: /^\s*Machine:\s*(.+)$/m.exec(out)?.[1]?.trim() ?? '',
    interpreter: /\[Requesting program interpreter: ([^\]]+)\]/.exec(out)?.[1],
    needed: [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1] as string),
  };
}

/**
 * Adds every library the binaries need (transitively) to /lib/<triplet>/<soname>, and
 * the interpreter at the path the binaries request (a symlink into /lib/<triplet>).
 */
async function addSharedLibraries(arch: Arch, image: string, binaries: string[], libs: Map<string, LibraryFile>): Promise<void> {
  const triplet = TRIPLET[arch];
  const libDir = join(image, 'lib', triplet);
  await mkdir(libDir, { recursive: true });
  const added = new Set<string>();
  const queue = [...binaries];
  const interpreters = new Set<string>();
  const available = () => [...new Set([...libs.values()].map((l) => l.from))].join(', ') || 'none';
  while (queue.length > 0) {
    const file = queue.shift() as string;
    const elf = await readElf(file);
    const shown = `/${relative(image, file)}`;
    if (elf.machine !== ELF_MACHINE[arch]) {
      throw new InfraError('infra-guest-build', `${shown} is built for "${elf.machine}", not ${arch}`);
    }
    if (elf.interpreter) interpreters.add(elf.interpreter);
    const wanted = [...elf.needed, ...(elf.interpreter ? [posix.basename(elf.interpreter)] : [])];
    for (const soname of wanted) {
      if (added.has(soname)) continue;
      const lib = libs.get(soname);
      if (!lib) {
        throw new InfraError(
          'infra-guest-build',
          `${shown} needs ${soname}, which none of the guest library packages (${available()}) provides: add its Debian package to the guest package list`,
        );
      }
      const target = join(libDir, soname);
      await copyFile(lib.path, target);
      await chmod(target, 0o755);
      added.add(soname);
      queue.push(target);
    }
  }
  for (const interp of interpreters) {
    const link = join(image, interp);
    const real = join(libDir, posix.basename(interp));
    if (resolvePath(link) === resolvePath(real)) continue;
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { force: true });
    await symlink(relative(dirname(link), real), link);
  }
}

// ---------------------------------------------------------------------------------------
// BPF objects

function hostMultiarchInclude(): string | undefined {
  const triplet = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : undefined;
  const dir = triplet ? `/usr/include/${triplet}` : undefined;
  return dir && existsSync(dir) ? dir : undefined;
}

/**
 * Compiles every guest/bpf/*.bpf.c into `outDir/<name>.bpf.o` with
 * `clang -O2 -g -target bpf`. Returns the object names. A compile error is an
 * InfraError `infra-guest-build` with clang's first error lines.
 */
export async function compileBpfObjects(bpfDir: string, outDir: string, arch: Arch): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  if (!existsSync(bpfDir)) return [];
  const sources = (await readdir(bpfDir)).filter((n) => n.endsWith('.bpf.c')).sort();
  const include = hostMultiarchInclude();
  const objects: string[] = [];
  for (const src of sources) {
    const obj = src.replace(/\.c$/, '.o');
    // The prefix maps keep the checkout's path out of the DWARF: the same sources give the
    // same object bytes wherever the project lives (the image cache key assumes it).
    const args = ['-O2', '-g', `-ffile-prefix-map=${bpfDir}=guest/bpf`, '-fdebug-compilation-dir=.', '-target', 'bpf', `-D__TARGET_ARCH_${BPF_TARGET_ARCH[arch]}`, ...(include ? [`-I${include}`] : []), `-I${bpfDir}`,
      '-c', join(bpfDir, src), '-o', join(outDir, obj)];
    const r = await runHostTool('clang', args, { providedBy: 'clang' });
    if (r.exitCode !== 0) {
      const errors = String(r.stderr).split('\n').filter((l) => /error/.test(l)).slice(0, 5).join(' | ');
      throw new InfraError('infra-guest-build', `clang could not compile ${join(bpfDir, src)}: ${errors || String(r.stderr).trim().slice(0, 500)}`);
    }
    objects.push(obj);
  }
  return objects;
}

// ---------------------------------------------------------------------------------------
// The USDT program

/**
 * Where the USDT program goes: the paths of the tester programs Tetragon's USDT examples
 * name (usdt.yaml, usdt-set.yaml). bpfgate's own program (guest/usdt/usdt.c) stands in
 * for them; each path is a copy of its own, as the examples name two programs.
 */
export const USDT_PROGRAM_PATHS = [
  'home/jolsa/tetragon/contrib/tester-progs/usdt',
  'home/jolsa/tetragon/contrib/tester-progs/usdt-override',
] as const;


/** The directory that holds systemtap's sys/sdt.h (systemtap-sdt-dev), on the host. */
function sdtIncludeDir(): string {
  const dirs = ['/usr/include', hostMultiarchInclude()].filter((d): d is string => d !== undefined);
  const dir = dirs.find((d) => existsSync(join(d, 'sys', 'sdt.h')));
  if (!dir) throw new InfraError('infra-tool-missing', 'sys/sdt.h is missing (apt-get install systemtap-sdt-dev)');
  return dir;
}

/** sys/sdt.h's hash and ld.lld's version: with clang's, they shape the USDT program. */
const usdtToolIdentity = memoized(async () => {
  const sdt = createHash('sha256').update(await readFile(join(sdtIncludeDir(), 'sys', 'sdt.h'))).digest('hex').slice(0, 16);
  const lld = await runHostTool('ld.lld', ['--version'], { providedBy: 'lld' });
  assertToolOk(lld, 'infra-tool-missing', 'ld.lld --version');
  return `sdt.h=${sdt} ${String(lld.stdout).split('\n')[0]}`;
});

/** The USDT program's default sources: bpfgate's own, in the package. */
export const USDT_SOURCE_DIR = join(PACKAGE_ROOT, 'guest', 'usdt');

/** What shapes the USDT program's bytes, for the cache key of an image that carries it. */
export async function usdtProgramIdentity(usdtDir: string = USDT_SOURCE_DIR): Promise<string> {
  const hash = createHash('sha256');
  await addFiles(usdtDir, (rel, bytes) => hash.update(`${rel}\0`).update(bytes).update('\0'));
  return `${hash.digest('hex')} ${await usdtToolIdentity()}`;
}

/**
 * Builds guest/usdt/usdt.c for the guest's arch with the host's clang and lld: freestanding
 * and static (its own _start, raw syscalls: no libc to match), and puts a copy at each of
 * USDT_PROGRAM_PATHS. The header is systemtap's <sys/sdt.h>, arch-neutral, the only one
 * the program includes.
 */
export async function compileUsdtProgram(usdtDir: string, image: string, arch: Arch): Promise<void> {
  const source = join(usdtDir, 'usdt.c');
  if (!existsSync(source)) throw new InfraError('infra-guest-build', `${source} is missing: the kernel lane's image carries the USDT program`);
  const out = join(image, USDT_PROGRAM_PATHS[0]);
  await mkdir(dirname(out), { recursive: true });
  // The host's sdt.h comes after the target's own include paths: it is the one header included.
  const args = [`--target=${TRIPLET[arch]}`, '-O2', '-Wall', '-ffreestanding', '-fno-stack-protector', '-fno-pic', '-fno-asynchronous-unwind-tables',
    '-static', '-nostdlib', '-fuse-ld=lld', '-Wl,--build-id=none', '-idirafter', sdtIncludeDir(), '-o', out, source];
  const r = await runHostTool('clang', args, { providedBy: 'clang' });
  if (r.exitCode !== 0) {
    throw new InfraError('infra-guest-build', `clang could not build ${source} for ${arch}: ${String(r.stderr).trim().split('\n').slice(0, 5).join(' | ')}`);
  }
  await chmod(out, 0o755);
  for (const path of USDT_PROGRAM_PATHS.slice(1)) {
    await copyFile(out, join(image, path));
    await chmod(join(image, path), 0o755);
  }
}

// ---------------------------------------------------------------------------------------
// Overlay tree and per-cell overlays

/** Copies a tree as is: modes kept, symlinks kept as symlinks, existing files replaced. */
async function copyTree(from: string, to: string): Promise<void> {
  for (const rel of await stagedEntries(from)) {
    const src = join(from, rel);
    const dst = join(to, rel);
    const st = await lstat(src);
    if (st.isDirectory()) {
      await mkdir(dst, { recursive: true });
      await chmod(dst, st.mode & 0o7777);
    } else if (st.isSymbolicLink()) {
      await rm(dst, { force: true });
      await symlink(await readlink(src), dst);
    } else if (st.isFile()) {
      await rm(dst, { force: true });
      await copyFile(src, dst);
      await chmod(dst, st.mode & 0o7777);
    }
  }
}

/** One file of a per-cell overlay. */
export interface OverlayFile {
  /** Path in the guest; a leading "/" is optional. */
  path: string;
  content?: string | Buffer;
  /** A host file to copy instead of `content` (large files are not read into memory). */
  from?: string;
  /** Defaults to 0644. */
  mode?: number;
}

/**
 * Writes `files` as a gzip'd newc archive to append to a base image: the kernel unpacks
 * concatenated archives in order, so these files land on top of the base (and replace
 * any base file of the same path). Parent directories are included with mode 0755.
 */
export async function buildOverlay(files: readonly OverlayFile[], outFile: string, opts: { compress?: boolean } = {}): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bpfgate-overlay-'));
  try {
    const root = join(work, 'root');
    await mkdir(root, { recursive: true });
    for (const f of files) {
      const rel = posix.normalize(f.path.replace(/^\/+/, ''));
      if (rel === '.' || rel.startsWith('..') || rel.split('/').includes('..')) {
        throw new InfraError('infra-guest-build', `overlay path ${f.path} leaves the guest root`);
      }
      const target = join(root, rel);
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      if (f.from !== undefined) await copyFile(f.from, target);
      else await writeFile(target, f.content ?? '');
      await chmod(target, f.mode ?? 0o644);
    }
    for (const rel of await stagedEntries(root)) {
      if ((await lstat(join(root, rel))).isDirectory()) await chmod(join(root, rel), 0o755);
    }
    await mkdir(dirname(outFile), { recursive: true });
    await packDirectory(root, outFile, opts.compress === false ? { gzipLevel: 0 } : {});
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Concatenated cpio archives: the kernel unpacks them in order, the overlay last. It
 * skips zero bytes between archives and takes a plain (uncompressed) archive only at a
 * 4-byte aligned offset, so the base is padded to 4 bytes first.
 */
export async function combineInitrd(base: string, overlay: string, out: string): Promise<void> {
  await copyFile(base, out);
  const handle = await open(out, 'a');
  try {
    const { size } = await handle.stat();
    if (size % 4) await handle.write(Buffer.alloc(4 - (size % 4)));
    await handle.write(await readFile(overlay));
  } finally {
    await handle.close();
  }
}
