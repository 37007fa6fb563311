/**
 * The QEMU platform: every cell is a real kernel booted under QEMU with bpfgate's
 * guest image. `describe` fetches the cell's kernel (through the private apt, pinned
 * by the lock file when one is given), reads its config and derives the facts; when
 * a live suite will boot the cell it also builds the guest image and chooses the
 * accelerator. `start` makes one scratch directory for the run's overlays; disposing
 * the started platform kills every guest still running and removes it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { CellFacts } from '../../core/facts.js';
import { InfraError } from '../../core/errors.js';
import type { CellSink, DescribedCell, Platform, PlatformEnv, StartedPlatform, StartingCell, SuiteSession } from '../../core/platform.js';
import type { Cell } from '../../matrix/cell.js';
import { kernelName } from '../../matrix/kernel-catalogue.js';
import { chooseAccel, type AccelChoice } from './accel.js';
import { BOOT_SUITE, cellIsDone, chargeUnbootable, runQemuCell } from './cell-runner.js';
import { kernelDerivedFacts } from './facts.js';
import { buildGuestImage } from './guest-image.js';
import { fetchKernel, readKernelConfig, type KernelArtifact } from './kernel-cache.js';
import { readLockFile, type LockFile } from './lockfile.js';
import type { QemuSession } from './session.js';

export { BOOT_SUITE };

/** Time a TCG boot may take before the suites start, with room for a loaded 2-core machine. */
const BOOT_ALLOWANCE_MS = 60_000;

/** What booting a described cell takes, kept by the platform (not part of the facts). */
export interface BootableCell {
  kernelImage: string;
  baseInitrd: string;
  accel: AccelChoice;
}

/** A cell's kernel, its config and the facts that follow from them. */
export async function kernelFacts(
  cell: Cell,
  opts: { lock?: LockFile; onProgress?: (line: string) => void } = {},
): Promise<{ kernel: KernelArtifact; config: Map<string, string>; facts: CellFacts }> {
  const kernel = await fetchKernel(cell.kernel, { expectArch: cell.arch, ...(opts.lock ? { lock: opts.lock } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  if (kernel.pageSizeKiB !== cell.pageSize) {
    throw new InfraError('infra-kernel-invalid', `${kernel.image}: a ${kernel.pageSizeKiB}K-page kernel, but the cell ${cell.id} is ${cell.pageSize}K`);
  }
  const config = await readKernelConfig(kernel.config);
  const facts: CellFacts = {
    cell: cell.id,
    platform: 'qemu',
    arch: kernel.arch,
    pageKiB: kernel.pageSizeKiB,
    kernel: {
      name: kernel.name,
      release: kernel.release,
      ...(kernel.package ? { package: kernel.package } : {}),
      ...(kernel.version ? { version: kernel.version } : {}),
      ...(kernel.suite ? { suite: kernel.suite } : {}),
      imageSha256: kernel.imageSha256,
      configSha256: kernel.configSha256,
    },
    bootArgs: [...cell.bootArgs],
    ...kernelDerivedFacts(cell, config, kernel.release),
  };
  return { kernel, config, facts };
}

/** Everything a boot of the cell needs: its kernel, the guest image of its arch, the accelerator. */
export async function bootableCell(cell: Cell, kernel: KernelArtifact, onProgress?: (line: string) => void): Promise<BootableCell> {
  const image = await buildGuestImage(cell.arch, onProgress ? { onProgress } : {});
  const accel = await chooseAccel(cell.arch, kernel.image, kernel.imageSha256, image.path);
  return { kernelImage: kernel.image, baseInitrd: image.path, accel };
}

async function firstLine(tool: string, args: string[]): Promise<string> {
  const r = await execa(tool, args, { reject: false });
  return r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'not installed';
}

export class QemuPlatform implements Platform<'qemu'> {
  readonly name = 'qemu' as const;
  private readonly bootable = new Map<string, BootableCell>();
  private lock: Promise<LockFile> | undefined;

  async tools(): Promise<Record<string, string>> {
    const [x86, arm, clang, apt] = await Promise.all([
      firstLine('qemu-system-x86_64', ['--version']),
      firstLine('qemu-system-aarch64', ['--version']),
      firstLine('clang', ['--version']),
      firstLine('apt-get', ['--version']),
    ]);
    return { 'qemu-system-x86_64': x86, 'qemu-system-aarch64': arm, clang, apt };
  }

  async describe(cell: Cell, opts: { booting: boolean }, env: PlatformEnv): Promise<{ facts: CellFacts; config: ReadonlyMap<string, string> }> {
    if (env.lockFile) this.lock ??= readLockFile(env.lockFile);
    const lock = this.lock ? await this.lock : undefined;
    const onProgress = (line: string) => env.log('info', `${cell.id}: ${line}`);
    env.phase(cell.id, 'prepare', kernelName(cell.kernel));
    const { kernel, config, facts } = await kernelFacts(cell, { ...(lock ? { lock } : {}), onProgress });
    if (opts.booting) {
      const bootable = await bootableCell(cell, kernel, onProgress);
      this.bootable.set(cell.id, bootable);
      facts.accel = { accel: bootable.accel.accel, why: bootable.accel.why };
    }
    return { facts, config };
  }

  async start(_cells: readonly StartingCell<'qemu'>[], env: PlatformEnv): Promise<StartedPlatform<'qemu'>> {
    return new StartedQemu(await mkdtemp(join(tmpdir(), 'bpfgate-')), this.bootable, env);
  }
}

class StartedQemu implements StartedPlatform<'qemu'> {
  private readonly running = new Set<Promise<unknown>>();
  private readonly stop = new AbortController();

  constructor(
    private readonly scratch: string,
    private readonly bootable: ReadonlyMap<string, BootableCell>,
    private readonly env: PlatformEnv,
  ) {
    env.signal.addEventListener('abort', () => this.stop.abort(), { once: true });
  }

  async run(described: DescribedCell, sessions: SuiteSession<QemuSession>[], sink: CellSink): Promise<{ ok: boolean }> {
    const { cell, facts } = described;
    if (facts.error) {
      chargeUnbootable({ described, sessions, sink }, facts.error.reason, { error: facts.error.message });
      return { ok: false };
    }
    if (cellIsDone(sessions, sink)) {
      this.env.phase(cell.id, 'resume', 'every check already on disk');
      return { ok: true };
    }
    const bootable = this.bootable.get(cell.id);
    if (!bootable) throw new Error(`qemu: cell ${cell.id} was not described for booting`);
    const budget = sessions.reduce((sum, s) => sum + s.budgetMs, 0);
    const work = runQemuCell({
      described,
      sessions,
      kernelImage: bootable.kernelImage,
      baseInitrd: bootable.baseInitrd,
      accel: bootable.accel.accel,
      timeoutMs: this.env.timeoutMs ?? BOOT_ALLOWANCE_MS + budget,
      cellDir: join(this.env.outDir, 'cells', cell.id),
      workDir: join(this.scratch, cell.id.replace(/[^A-Za-z0-9._+-]/g, '_')),
      sink,
      signal: this.stop.signal,
      onPhase: (phase, detail) => this.env.phase(cell.id, phase, phase === 'boot' ? `${detail} (${bootable.accel.why})` : detail),
      schedule: sink.slot,
    });
    this.running.add(work);
    try {
      const outcome = await work;
      return { ok: outcome.status === 'done' };
    } finally {
      this.running.delete(work);
    }
  }

  /** Kills every guest still running, waits for them, and removes the scratch directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop.abort();
    await Promise.allSettled([...this.running]);
    await rm(this.scratch, { recursive: true, force: true });
  }
}
