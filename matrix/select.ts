/**
 * `--cells GLOB`: narrowing a planned matrix to some of its cells. Comma-separated
 * picomatch globs on cell ids; the order of the matrix is kept. A glob that matches
 * no cell is a usage error (exit 2): a typo must not silently run nothing.
 */
import picomatch from 'picomatch';
import { BpfgateError } from '../core/errors.js';
import type { Cell } from './cell.js';

/** The cells whose id matches any of the comma-separated globs; all cells when `glob` is absent or blank. */
export function selectCells(cells: readonly Cell[], glob?: string): Cell[] {
  const globs = (glob ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g.length > 0);
  if (globs.length === 0) return [...cells];
  const matchers = globs.map((g) => picomatch(g));
  for (const [i, isMatch] of matchers.entries()) {
    if (!cells.some((c) => isMatch(c.id))) {
      throw new BpfgateError(
        'cells-no-match',
        `--cells: "${globs[i]}" matches no cell; the cells are: ${cells.map((c) => c.id).join(', ')}`,
      );
    }
  }
  return cells.filter((c) => matchers.some((isMatch) => isMatch(c.id)));
}
