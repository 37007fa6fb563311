/**
 * Getting a QEMU cell's bits on disk: its kernel (downloaded or from the cache,
 * pinned by a lock file when one is given), the kernel's config, and the base guest
 * image of its arch. Every failure is an InfraError the orchestrator charges to the cell.
 */
import type { Cell } from '../../matrix/cell.js';
import { buildGuestImage } from './guest-image.js';
import { fetchKernel, readKernelConfig } from './kernel-cache.js';
import { readLockFile, type LockFile } from './lockfile.js';

export interface PreparedCell {
  kernelImage: string;
  imageSha256: string;
  release: string;
  config: Map<string, string>;
  baseInitrd: string;
  kernelVersion: string | undefined;
}

const locks = new Map<string, Promise<LockFile>>();

export async function prepareQemuCell(cell: Cell, opts: { lockFile?: string; onProgress?: (line: string) => void } = {}): Promise<PreparedCell> {
  let lock: LockFile | undefined;
  if (opts.lockFile) {
    if (!locks.has(opts.lockFile)) locks.set(opts.lockFile, readLockFile(opts.lockFile));
    lock = await locks.get(opts.lockFile);
  }
  const progress = opts.onProgress ? { onProgress: opts.onProgress } : {};
  const [kernel, image] = await Promise.all([
    fetchKernel(cell.kernel, { ...(lock ? { lock } : {}), expectArch: cell.arch, ...progress }),
    buildGuestImage(cell.arch, progress),
  ]);
  return {
    kernelImage: kernel.image,
    imageSha256: kernel.imageSha256,
    release: kernel.release,
    config: await readKernelConfig(kernel.config),
    baseInitrd: image.path,
    kernelVersion: kernel.version,
  };
}
