/**
 * table.json: the report model itself (schemaVersion 1), pretty-printed, with its
 * cells (id, arch, pages, kernel, kernelSource, variants, bootArgs, platform), rows
 * (subject x cell pairs with their checks and evidence), counts and reasons. The
 * shape is stable: every row lists every cell id, null where the subject was not run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import type { ReportCell, ReportModel } from './model.js';

export const TABLE_JSON = 'table.json';

export function renderJson(model: ReportModel): string {
  return `${JSON.stringify(model, null, 2)}\n`;
}

/**
 * The cells of an earlier table.json in `dir`, so `bpfgate table --from DIR` keeps the
 * matrix facts (kernel package, boot args) that results.jsonl does not carry.
 * Undefined when the run never wrote one (it was killed before the end).
 */
export async function readTableCells(dir: string): Promise<ReportCell[] | undefined> {
  const file = join(dir, TABLE_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new InputError('table-malformed', file, {}, `not JSON: ${(cause as Error).message}`, cause);
  }
  const cells = (parsed as Partial<ReportModel> | null)?.cells;
  if ((parsed as Partial<ReportModel> | null)?.schemaVersion !== 1 || !Array.isArray(cells) || !cells.every((c) => typeof (c as ReportCell | null)?.id === 'string')) {
    throw new InputError('table-malformed', file, {}, 'expected a bpfgate table.json (schemaVersion 1) with a cells list');
  }
  return cells;
}
