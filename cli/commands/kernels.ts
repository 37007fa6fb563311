/**
 * `bpfgate kernels list|fetch|lock`: the kernel catalogue, the kernel and guest image
 * cache, and the lock file. The catalogue or summary goes to `out` (stdout); progress
 * lines go to `err` (stderr), one per kernel or image:
 *   fetch trixie/linux-image-arm64-16k 6.12.117-1 ... 38.3 MB, 16K pages, cached
 * A kernel that cannot be fetched is reported and the others still are; the exit code
 * is then 3 (infrastructure) or 2 (bad input), the larger of the failures.
 */
import { BpfgateError, InfraError, exitCodeOf } from '../../core/errors.js';
import { describeError } from '../errors.js';
import type { Arch, Cell, KernelRef, PageSize } from '../../matrix/cell.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { KERNEL_CATALOGUE, findKernel, kernelName } from '../../matrix/kernel-catalogue.js';
import { privateApt, type PrivateApt } from '../../runners/qemu/apt.js';
import { buildGuestImage } from '../../runners/qemu/guest-image.js';
import { cachedKernel, fetchKernel, type KernelArtifact } from '../../runners/qemu/kernel-cache.js';
import { DEFAULT_LOCK_FILE, readLockFile, writeLockFile, type LockFile, type LockedKernel } from '../../runners/qemu/lockfile.js';

export interface KernelsCommandOptions {
  /** The cells whose kernels to fetch or lock (QEMU cells only are used). */
  matrixCells?: Cell[];
  /** Catalogue names; they win over matrixCells. */
  names?: string[];
  /** `fetch`/`list`: read this lock file; `lock`: write it (default bpfgate.lock.json). */
  lockFile?: string;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

/** One kernel to fetch: its ref, its arch and page size as the matrix expects them, and the cells that use it. */
interface Target {
  name: string;
  ref: KernelRef;
  arch: Arch;
  pageSize: PageSize;
  cells: string[];
}

export async function kernelsCommand(sub: 'list' | 'fetch' | 'lock', opts: KernelsCommandOptions = {}): Promise<number> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const log = (line: string) => err.write(`${line}\n`);
  switch (sub) {
    case 'list':
      return listKernels(out, opts.lockFile ? await readLockFile(opts.lockFile) : undefined);
    case 'fetch':
      return fetchKernels(await targets(opts), opts.lockFile ? await readLockFile(opts.lockFile) : undefined, out, log);
    case 'lock':
      return lockKernels(await targets(opts), opts.lockFile ?? DEFAULT_LOCK_FILE, out, log);
    default:
      throw new BpfgateError('usage', `kernels ${String(sub)}: expected list, fetch or lock`);
  }
}

async function targets(opts: KernelsCommandOptions): Promise<Target[]> {
  if (opts.names && opts.names.length > 0) {
    return opts.names.map((name) => {
      const entry = findKernel(name);
      if (!entry) {
        throw new BpfgateError('usage', `unknown kernel "${name}"; the catalogue has: ${KERNEL_CATALOGUE.map((e) => e.name).join(', ')}`);
      }
      return { name: entry.name, ref: entry.ref, arch: entry.arch, pageSize: entry.pageSize, cells: [] };
    });
  }
  const cells = opts.matrixCells ?? (await loadDefaultMatrix()).cells;
  const byName = new Map<string, Target>();
  for (const cell of cells) {
    if (cell.platform !== 'qemu') continue;
    const name = cell.kernel.kind === 'file' ? `file:${cell.kernel.image}` : kernelName(cell.kernel);
    const known = byName.get(name);
    if (known) known.cells.push(cell.id);
    else byName.set(name, { name: kernelName(cell.kernel), ref: cell.kernel, arch: cell.arch, pageSize: cell.pageSize, cells: [cell.id] });
  }
  return [...byName.values()];
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function describe(a: KernelArtifact, ms: number): string {
  const how = a.origin === 'cache' ? 'cached' : `fetched in ${secs(ms)}`;
  return `fetch ${a.name} ${a.version ?? a.release} ... ${mb(a.imageBytes)}, ${a.pageSizeKiB}K pages, ${how}`;
}

async function fetchKernels(list: Target[], lock: LockFile | undefined, out: NodeJS.WritableStream, log: (l: string) => void): Promise<number> {
  let exit = 0;
  const fetched: KernelArtifact[] = [];
  let apt: PrivateApt | undefined;
  const getApt = async () => (apt ??= await privateApt({ onLog: (l) => log(`  ${l}`) }));

  // Download every missing .deb in one apt-get run before extracting them one by one.
  const missing: Target[] = [];
  for (const t of list) if (t.ref.kind === 'debian' && !(await cachedKernel(t.ref, { lock, apt: await optionalApt(getApt) }))) missing.push(t);
  if (missing.length > 1 && !lock) {
    try {
      const a = await getApt();
      const resolved = await Promise.all(missing.map((t) => (t.ref.kind === 'debian' ? a.resolve(t.ref.package, t.ref.suite, t.ref.debArch) : undefined)));
      const debs = resolved.filter((r): r is NonNullable<typeof r> => r !== undefined);
      if (debs.length > 0) {
        log(`download ${debs.map((r) => r.package).join(', ')} (${mb(debs.reduce((n, r) => n + r.size, 0))})`);
        await a.downloadAll(debs);
      }
    } catch {
      // Each kernel reports its own failure below.
    }
  }

  for (const t of list) {
    const started = Date.now();
    try {
      const artifact = await fetchKernel(t.ref, { lock, expectArch: t.arch, onProgress: (l) => log(`  ${l}`), ...(apt ? { apt } : {}) });
      if (artifact.arch !== t.arch || artifact.pageSizeKiB !== t.pageSize) {
        throw new InfraError(
          'infra-kernel-invalid',
          `the image is ${artifact.arch} with ${artifact.pageSizeKiB}K pages, but ${t.cells.length ? `cells ${t.cells.join(', ')} expect` : 'the catalogue expects'} ${t.arch} with ${t.pageSize}K pages`,
        );
      }
      log(describe(artifact, Date.now() - started));
      fetched.push(artifact);
    } catch (e) {
      log(`error ${t.name}: ${describeError(e)}`);
      exit = Math.max(exit, exitCodeOf(e));
    }
  }

  for (const arch of [...new Set(fetched.map((a) => a.arch))].sort()) {
    const started = Date.now();
    try {
      const image = await buildGuestImage(arch, { onProgress: (l) => log(`  ${l}`), ...(apt ? { apt } : {}) });
      log(`guest ${arch} ... ${(image.bytes / 1e6).toFixed(2)} MB, ${image.origin === 'cache' ? 'cached' : `built in ${secs(Date.now() - started)}`}`);
    } catch (e) {
      log(`error guest image ${arch}: ${describeError(e)}`);
      exit = Math.max(exit, exitCodeOf(e));
    }
  }
  out.write(`${fetched.length} of ${list.length} kernels ready\n`);
  return exit;
}

/** The private apt when the machine has a Debian mirror configured; undefined otherwise (offline listing). */
async function optionalApt(get: () => Promise<PrivateApt>): Promise<PrivateApt | undefined> {
  try {
    return await get();
  } catch {
    return undefined;
  }
}

async function listKernels(out: NodeJS.WritableStream, lock: LockFile | undefined): Promise<number> {
  let apt: PrivateApt | undefined;
  try {
    apt = await privateApt();
  } catch {
    apt = undefined;
  }
  const rows: string[][] = [['NAME', 'ARCH', 'PAGES', 'LABEL', 'DEFAULT', 'CACHED', 'VERSION']];
  const cached = await Promise.all(KERNEL_CATALOGUE.map((e) => cachedKernel(e.ref, { ...(lock ? { lock } : {}), ...(apt ? { apt } : {}) })));
  // The lists on disk say which version a fetch would take; never refresh them for a listing.
  // Asked all at once, so apt answers each suite family in one batch.
  const wouldTake = await Promise.all(
    KERNEL_CATALOGUE.map(async (e, i) => {
      if (cached[i] || !apt || e.ref.kind !== 'debian') return undefined;
      return apt.resolve(e.ref.package, e.ref.suite, e.ref.debArch, { offline: true }).catch(() => undefined);
    }),
  );
  KERNEL_CATALOGUE.forEach((e, i) => {
    const c = cached[i];
    const r = c ?? wouldTake[i];
    const version = r ? `${r.version} (${r.package})` : '-';
    rows.push([e.name, e.arch, `${e.pageSize}K`, e.cellLabel, e.isDefault ? 'yes' : '', c ? 'cached' : 'no', version]);
  });
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) out.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')}\n`);
  return 0;
}

async function lockKernels(list: Target[], file: string, out: NodeJS.WritableStream, log: (l: string) => void): Promise<number> {
  let exit = 0;
  const kernels: LockedKernel[] = [];
  for (const t of list) {
    if (t.ref.kind !== 'debian') {
      log(`skip ${t.name}: a user's kernel file is not locked`);
      continue;
    }
    const started = Date.now();
    try {
      const a = await fetchKernel(t.ref, { onProgress: (l) => log(`  ${l}`) });
      log(describe(a, Date.now() - started));
      kernels.push({
        name: t.name,
        suite: t.ref.suite,
        debArch: t.ref.debArch,
        requested: t.ref.package,
        package: a.package as string,
        version: a.version as string,
        filename: a.filename as string,
        sha256: a.debSha256 as string,
        imageSha256: a.imageSha256,
        configSha256: a.configSha256,
      });
    } catch (e) {
      log(`error ${t.name}: ${describeError(e)}`);
      exit = Math.max(exit, exitCodeOf(e));
    }
  }
  if (exit !== 0) {
    log(`lock file ${file} not written: some kernels could not be resolved`);
    return exit;
  }
  await writeLockFile(file, { lockfileVersion: 1, kernels });
  out.write(`locked ${kernels.length} kernels in ${file}\n`);
  return 0;
}
