/**
 * Matrix expansion: a validated matrix spec -> cells with stable ids. Pure: the
 * same spec always gives the same cells in the same order (boot-major, so the
 * default matrix reads like the design's table: all `default` cells, then all
 * `+nobpflsm` cells), then the included cells in file order. Problems (duplicate
 * ids, excludes that match nothing) are returned with field paths, never thrown,
 * so the loader can position them in the file.
 */
import { resolve } from 'node:path';
import picomatch from 'picomatch';
import { DEBIAN_ARCH, type Arch, type Cell, type KernelRef, type PageSize, type Platform } from './cell.js';
import { DEFAULT_BOOT, cellId } from './cell-id.js';
import type { FieldPath } from '../core/yaml-input.js';

export type PageName = '4k' | '16k' | '64k';

/** One entry of `kernels:` (or `include[].kernel`), as the schema admits it. */
export interface KernelSpec {
  arch: Arch;
  pages?: PageName;
  label: string;
  debian?: { suite: string; package: string };
  file?: { image: string; config: string };
}

/** One entry of `boot:`. */
export interface BootSpec {
  name: string;
  args?: string[];
}

export interface IncludeSpec {
  kernel: KernelSpec;
  boot?: BootSpec;
}

/** A matrix file's content after the schema stage. */
export interface MatrixSpec {
  kernels: KernelSpec[];
  boot?: BootSpec[];
  platform?: Platform;
  exclude?: string[];
  include?: IncludeSpec[];
}

/** A problem at a field of the matrix file; `other` names a second field involved (a duplicate's first maker). */
export interface PlanProblem {
  code: string;
  path: FieldPath;
  message: string;
  other?: FieldPath;
}

export interface Plan {
  cells: Cell[];
  problems: PlanProblem[];
}

export const PAGE_SIZES: Record<PageName, PageSize> = { '4k': 4, '16k': 16, '64k': 64 };

const DEFAULT_BOOT_SPEC: BootSpec = { name: DEFAULT_BOOT };

/** The kernel reference of a spec; file paths are resolved against the matrix file's directory. */
export function kernelRef(spec: KernelSpec, baseDir: string): KernelRef {
  if (spec.file) return { kind: 'file', image: resolve(baseDir, spec.file.image), config: resolve(baseDir, spec.file.config) };
  const debian = spec.debian ?? { suite: '', package: '' };
  return { kind: 'debian', suite: debian.suite, package: debian.package, debArch: DEBIAN_ARCH[spec.arch] };
}

function makeCell(kernel: KernelSpec, boot: BootSpec, platform: Platform, baseDir: string): Cell {
  const pageSize = PAGE_SIZES[kernel.pages ?? '4k'];
  const variants = boot.name === DEFAULT_BOOT ? [] : [boot.name];
  return {
    id: cellId({ arch: kernel.arch, pageSize, kernelLabel: kernel.label, variants }),
    arch: kernel.arch,
    pageSize,
    kernelLabel: kernel.label,
    kernel: kernelRef(kernel, baseDir),
    bootArgs: [...(boot.args ?? [])],
    platform,
    variants,
  };
}

interface Made {
  cell: Cell;
  /** The field that made the cell: its kernel entry, its boot entry (product) or its include entry. */
  kernelPath: FieldPath;
  bootPath: FieldPath | undefined;
}

/** The product kernels x boot, minus exclude, plus include. */
export function expandMatrix(spec: MatrixSpec, baseDir: string): Plan {
  const platform = spec.platform ?? 'qemu';
  const boots = spec.boot ?? [DEFAULT_BOOT_SPEC];
  const problems: PlanProblem[] = [];

  const product: Made[] = [];
  for (const [b, boot] of boots.entries()) {
    for (const [k, kernel] of spec.kernels.entries()) {
      product.push({
        cell: makeCell(kernel, boot, platform, baseDir),
        kernelPath: ['kernels', k],
        bootPath: spec.boot ? ['boot', b] : undefined,
      });
    }
  }

  const excludes = (spec.exclude ?? []).map((glob) => picomatch(glob));
  const used = new Set<number>();
  const kept = product.filter((m) => {
    const hits = excludes.flatMap((isMatch, i) => (isMatch(m.cell.id) ? [i] : []));
    for (const i of hits) used.add(i);
    return hits.length === 0;
  });
  for (const [i, glob] of (spec.exclude ?? []).entries()) {
    // An exclude that removes nothing is a typo that would silently keep cells: say so.
    if (!used.has(i)) {
      problems.push({
        code: 'matrix-invalid',
        path: ['exclude', i],
        message: `"${glob}" matches no cell of kernels x boot; the cells are: ${product.map((m) => m.cell.id).join(', ')}`,
      });
    }
  }

  const included: Made[] = (spec.include ?? []).map((inc, i) => ({
    cell: makeCell(inc.kernel, inc.boot ?? DEFAULT_BOOT_SPEC, platform, baseDir),
    kernelPath: ['include', i],
    bootPath: undefined,
  }));

  const seen = new Map<string, Made>();
  const cells: Cell[] = [];
  for (const made of [...kept, ...included]) {
    const first = seen.get(made.cell.id);
    if (first) {
      problems.push(duplicateProblem(made, first));
      continue;
    }
    seen.set(made.cell.id, made);
    cells.push(made.cell);
  }
  return { cells, problems };
}

/** Point at whichever axis entry repeats: the second kernel, the second boot, or the include entry. */
function duplicateProblem(made: Made, first: Made): PlanProblem {
  const sameKernel = samePath(made.kernelPath, first.kernelPath);
  const path = sameKernel && made.bootPath ? made.bootPath : made.kernelPath;
  const other = sameKernel && first.bootPath ? first.bootPath : first.kernelPath;
  return { code: 'matrix-duplicate-cell', path, other, message: `duplicate cell id "${made.cell.id}"` };
}

function samePath(a: FieldPath, b: FieldPath): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}
