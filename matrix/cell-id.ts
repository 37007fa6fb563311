/**
 * Cell ids: the one place that spells them. `x86_64-<label>`, `arm64-<pages>-<label>`,
 * then `+<variant>` per non-default boot variant. Ids are used in paths, baselines and
 * tables, so they never contain "/", whitespace or glob characters (the schema's label
 * and boot-name patterns guarantee it). Nothing parses an id back: what a cell is
 * lives in its facts (run.json), not in its name.
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
