/**
 * Cell ids: the one place that spells them. `x86_64-<label>`, `arm64-<pages>-<label>`,
 * then `+<variant>` per non-default boot variant. Ids are used in paths, baselines and
 * tables, so they never contain "/", whitespace or glob characters (the schema's label
 * and boot-name patterns guarantee it), and `parseCellId` inverts `cellId` exactly.
 */
import type { Arch, PageSize } from './cell.js';

/** The parts an id is made of. */
export interface CellIdParts {
  arch: Arch;
  pageSize: PageSize;
  kernelLabel: string;
  variants: string[];
}

/** The boot variant that adds nothing to an id. */
export const DEFAULT_BOOT = 'default';

export function cellId(parts: CellIdParts): string {
  const base = parts.arch === 'x86_64' ? `x86_64-${parts.kernelLabel}` : `arm64-${parts.pageSize}k-${parts.kernelLabel}`;
  return [base, ...parts.variants].join('+');
}

/** Labels and boot names, as the matrix schema's patterns admit them. */
const LABEL = '[A-Za-z0-9][A-Za-z0-9._-]*';
const X86_RE = new RegExp(`^x86_64-(${LABEL})((?:\\+${LABEL})*)$`);
const ARM64_RE = new RegExp(`^arm64-(4|16|64)k-(${LABEL})((?:\\+${LABEL})*)$`);

/**
 * The parts of an id made by `cellId`, or undefined for any other string (for example
 * the `static` pseudo-cell of lint checks). Used when only results are at hand
 * (`bpfgate table --from DIR` on a run that never wrote its table.json).
 */
export function parseCellId(id: string): CellIdParts | undefined {
  const variantsOf = (tail: string | undefined) => (tail ?? '').split('+').filter((v) => v.length > 0);
  const x86 = X86_RE.exec(id);
  if (x86) return { arch: 'x86_64', pageSize: 4, kernelLabel: x86[1] ?? '', variants: variantsOf(x86[2]) };
  const arm = ARM64_RE.exec(id);
  if (arm) return { arch: 'arm64', pageSize: Number(arm[1]) as PageSize, kernelLabel: arm[2] ?? '', variants: variantsOf(arm[3]) };
  return undefined;
}
