/**
 * The kernel catalogue: the Debian kernels a user can name, as pure data. Nothing here
 * touches the host; the versions behind the names are resolved by the kernel cache.
 *
 * Invariants: names are `<suite>/<package>` and unique; a Debian kernel is identified by
 * its suite, package and Debian architecture (`kernelName` spells that identity for refs
 * that are not in the catalogue); `cellLabel` is unique per (arch, page size), so cells
 * made from catalogue entries never share an id.
 */
import { basename } from 'node:path';
import { DEBIAN_ARCH, type Arch, type DebianKernel, type FileKernel, type KernelRef, type PageSize } from './cell.js';

export type KernelFlavour = 'generic' | '16k' | 'cloud' | 'rt';

export interface KernelEntry {
  /** `trixie/linux-image-arm64-16k`; for a user's kernel, `file:<image file name>`. */
  name: string;
  ref: KernelRef;
  arch: Arch;
  /** The page size the flavour is built for; the kernel cache reads the real one from the image header. */
  pageSize: PageSize;
  /** The kernel series: `6.1`, `6.12`. */
  label: string;
  /** A label that tells this entry apart from the others of its arch and page size: `6.12`, `6.12-cloud`, `6.12-bpo`. */
  cellLabel: string;
  flavour: KernelFlavour;
  /** One of the five kernels of the default matrix. */
  isDefault: boolean;
}

interface SuiteSeries {
  suite: string;
  label: string;
  /** Appended to cell labels so that two suites with the same series do not collide. */
  labelSuffix: string;
  flavours: readonly KernelFlavour[];
  defaults: readonly KernelFlavour[];
}

const SERIES: readonly SuiteSeries[] = [
  { suite: 'bookworm', label: '6.1', labelSuffix: '', flavours: ['generic', 'cloud', 'rt'], defaults: ['generic'] },
  { suite: 'trixie', label: '6.12', labelSuffix: '', flavours: ['generic', '16k', 'cloud', 'rt'], defaults: ['generic', '16k'] },
  // bookworm-backports carries 6.12 built for bookworm (`6.12.x+deb12`): the same series as trixie.
  { suite: 'bookworm-backports', label: '6.12', labelSuffix: '-bpo', flavours: ['generic', '16k', 'cloud', 'rt'], defaults: [] },
];

function entries(): KernelEntry[] {
  const out: KernelEntry[] = [];
  for (const series of SERIES) {
    for (const flavour of series.flavours) {
      for (const arch of ['x86_64', 'arm64'] as const) {
        // 16K pages are an arm64-only flavour.
        if (flavour === '16k' && arch !== 'arm64') continue;
        const debArch = DEBIAN_ARCH[arch];
        const pkg =
          flavour === 'generic' ? `linux-image-${debArch}` : flavour === '16k' ? `linux-image-${debArch}-16k` : `linux-image-${flavour}-${debArch}`;
        const ref: DebianKernel = { kind: 'debian', suite: series.suite, package: pkg, debArch };
        const flavourSuffix = flavour === 'generic' || flavour === '16k' ? '' : `-${flavour}`;
        out.push({
          name: kernelName(ref),
          ref,
          arch,
          pageSize: flavour === '16k' ? 16 : 4,
          label: series.label,
          cellLabel: `${series.label}${series.labelSuffix}${flavourSuffix}`,
          flavour,
          isDefault: series.defaults.includes(flavour),
        });
      }
    }
  }
  return out;
}

/** Every kernel a user can name, defaults first in the design's order. */
export const KERNEL_CATALOGUE: readonly KernelEntry[] = (() => {
  const all = entries();
  const order = [
    'bookworm/linux-image-amd64',
    'trixie/linux-image-amd64',
    'bookworm/linux-image-arm64',
    'trixie/linux-image-arm64',
    'trixie/linux-image-arm64-16k',
  ];
  const rank = (e: KernelEntry) => (e.isDefault ? order.indexOf(e.name) : order.length);
  return [...all].sort((a, b) => rank(a) - rank(b));
})();

/** The five kernels of the default matrix. */
export const DEFAULT_KERNELS: readonly KernelEntry[] = KERNEL_CATALOGUE.filter((e) => e.isDefault);

/**
 * The name of a kernel ref: `<suite>/<package>` for a Debian kernel (with `:<arch>` when
 * the package name does not say its architecture), `file:<image file name>` for a user's,
 * `node:<name>` for the kernel a cluster node runs.
 */
export function kernelName(ref: KernelRef): string {
  if (ref.kind === 'file') return `file:${basename(ref.image)}`;
  if (ref.kind === 'running') return `node:${ref.node}`;
  const saysArch = ref.package.endsWith(`-${ref.debArch}`) || ref.package.includes(`-${ref.debArch}-`);
  return saysArch ? `${ref.suite}/${ref.package}` : `${ref.suite}/${ref.package}:${ref.debArch}`;
}

/** The catalogue entry with this name (`trixie/linux-image-arm64-16k`), if any. */
export function findKernel(name: string): KernelEntry | undefined {
  return KERNEL_CATALOGUE.find((e) => e.name === name);
}

/** The catalogue entry of a Debian kernel ref, if the catalogue has it. */
export function catalogueEntryFor(ref: KernelRef): KernelEntry | undefined {
  if (ref.kind !== 'debian') return undefined;
  return KERNEL_CATALOGUE.find(
    (e) => e.ref.kind === 'debian' && e.ref.suite === ref.suite && e.ref.package === ref.package && e.ref.debArch === ref.debArch,
  );
}

/** Whether two refs name the same kernel. */
export function sameKernel(a: KernelRef, b: KernelRef): boolean {
  if (a.kind === 'file') return b.kind === 'file' && a.image === b.image && a.config === b.config;
  if (a.kind === 'running') return b.kind === 'running' && a.node === b.node;
  return b.kind === 'debian' && a.suite === b.suite && a.package === b.package && a.debArch === b.debArch;
}

export interface FileKernelInput {
  image: string;
  config: string;
  arch: Arch;
  /** Defaults to 4; the kernel cache checks it against the image header. */
  pageSize?: PageSize;
  /** Defaults to `custom`. */
  label?: string;
}

/**
 * A user's own kernel (an image plus its config file) as a catalogue entry. Paths are
 * kept as given: resolve them against the matrix file before calling this.
 */
export function fileKernelEntry(input: FileKernelInput): KernelEntry {
  const ref: FileKernel = { kind: 'file', image: input.image, config: input.config };
  const label = input.label ?? 'custom';
  return {
    name: kernelName(ref),
    ref,
    arch: input.arch,
    pageSize: input.pageSize ?? 4,
    label,
    cellLabel: label,
    flavour: 'generic',
    isDefault: false,
  };
}
