/**
 * table.json: the report model itself (schemaVersion 1), pretty-printed, with its
 * cells (id, arch, pages, kernel, release, kernelSource, bootArgs, lsm, accel, agent, platform), rows
 * (subject x cell pairs with their checks and evidence), counts and reasons. The
 * shape is stable: every row lists every cell id, null where the subject was not run.
 */
import type { ReportModel } from './model.js';

export const TABLE_JSON = 'table.json';

export function renderJson(model: ReportModel): string {
  return `${JSON.stringify(model, null, 2)}\n`;
}
