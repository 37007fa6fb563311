/**
 * Cells: the places where policies run. Planning is pure: a matrix expands to
 * cells with stable ids, and nothing here touches the host.
 */
/**
 * The kernel-lane and tetragon-vm lanes share one QEMU cell; cluster lanes have their own.
 * `containerd` is the host itself running Debian's containerd in a private mount namespace
 * (runners/containerd/): its one cell, `host-containerd`, is made by `bpfgate repro` for the
 * runtime bugs, never by a matrix file (matrix.schema.json does not offer it).
 */
export type Platform = 'qemu' | 'qemu-cluster' | 'kind' | 'k3s' | 'kubeconfig' | 'containerd';

export type Arch = 'x86_64' | 'arm64';
/** Page size in KiB. */
export type PageSize = 4 | 16 | 64;

/** A kernel from a Debian package, resolved through bpfgate's private apt configuration. */
export interface DebianKernel {
  kind: 'debian';
  /** Debian suite: bookworm, trixie, bookworm-backports, ... */
  suite: string;
  /** A package or metapackage name, e.g. linux-image-arm64-16k. */
  package: string;
  /** Debian architecture of the package. */
  debArch: 'amd64' | 'arm64';
}

/** A user's own kernel image plus its config file. */
export interface FileKernel {
  kind: 'file';
  image: string;
  config: string;
}

/** The kernel a cluster node already runs (a cell of an existing cluster): nothing to fetch or boot. */
export interface RunningKernel {
  kind: 'running';
  /** The node it runs on. */
  node: string;
}

export type KernelRef = DebianKernel | FileKernel | RunningKernel;

export interface Cell {
  /** Stable id, e.g. "arm64-16k-6.12+nobpflsm". Used in paths, baselines and tables. */
  id: string;
  arch: Arch;
  pageSize: PageSize;
  /** Short kernel label used in ids and tables, e.g. "6.12". */
  kernelLabel: string;
  kernel: KernelRef;
  /** Extra kernel command line parameters (for example an lsm= list without bpf). */
  bootArgs: string[];
  /** Where the cell runs: a QEMU guest, or a cluster (kind, k3s, an existing kubeconfig). */
  platform: Platform;
  /** Names of the variant axes applied (e.g. ["nobpflsm"]); part of the id. */
  variants: string[];
}

export const DEBIAN_ARCH: Record<Arch, 'amd64' | 'arm64'> = { x86_64: 'amd64', arm64: 'arm64' };
