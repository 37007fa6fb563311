/**
 * Cell facts: what is known of a cell before any suite plans. Its platform gathers
 * them once (a QEMU cell: the kernel package and its config, the page size from the
 * image header, the LSM list the kernel will build, the accelerator), the orchestrator
 * freezes them, and `run.json` records them, so `table`, `baseline` and the
 * cross-lane checks read facts instead of guessing them from cell ids.
 *
 * Invariant: facts are never changed after a suite has seen them. What a guest then
 * measures (the page size, the LSM list) is checked against them by the probe suite.
 */
import type { Reason } from './reasons.js';
import type { Arch, PageSize, Platform } from '../matrix/cell.js';

export interface KernelFacts {
  /** Catalogue name (`trixie/linux-image-arm64-16k`) or `file:<name>` for a user's kernel. */
  name: string;
  /** `uname -r` as the package or image says it, e.g. 6.12.118+deb13-arm64-16k. */
  release: string;
  /** The real Debian package and version, for a Debian kernel. */
  package?: string;
  version?: string;
  suite?: string;
  imageSha256?: string;
  configSha256?: string;
}

export interface CellFacts {
  cell: string;
  platform: Platform;
  arch: Arch;
  /** Page size in KiB, from the kernel image header (or the config), not from the cell's name. */
  pageKiB: PageSize;
  kernel: KernelFacts;
  /** Kernel command line parameters the cell adds. */
  bootArgs: string[];
  /** The active LSM list the kernel builds from `lsm=` (or CONFIG_LSM) and what it has built in. */
  lsm: string[];
  /** The kernel config options suites decide by (the whole config stays in memory, not in run.json). */
  config: Record<string, string>;
  /** How the cell's guests run, when the run boots it. */
  accel?: { accel: 'kvm' | 'tcg'; why: string };
  /** A cluster cell's node: its name, its container runtime and that runtime's socket. */
  node?: { name: string; runtime: string; criSocket: string };
  /** The agent a suite runs on this cell, when one does (e.g. Tetragon v1.5.0). */
  agent?: { name: string; version: string };
  /** The facts could not be gathered: every check of the cell is charged to this. */
  error?: { reason: Reason; message: string };
}

/**
 * The upstream version in a kernel release or Debian package version: "6.12.57-1" and
 * "6.12.57+deb13-amd64" -> [6, 12, 57]; bookworm's releases ("6.1.0-40-amd64") carry no patch level.
 */
export function kernelVersion(text: string): [number, number, number] {
  const m = text.match(/^(\d+)\.(\d+)(?:\.(\d+))?/);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

/** Is the kernel of this release or version MAJOR.MINOR or later? (An unreadable one is not.) */
export function kernelAtLeast(text: string, major: number, minor: number): boolean {
  const [a, b] = kernelVersion(text);
  return a > major || (a === major && b >= minor);
}
