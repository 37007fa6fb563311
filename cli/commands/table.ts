/** `bpfgate table --from DIR --format md|html|json|attack [--compare DIR]`: render a report from a results directory. */
import { BpfgateError } from '../../core/errors.js';
import { readPreviousRun, renderTableFromDir, type TableFormat } from '../../reports/index.js';

const FORMATS: readonly TableFormat[] = ['md', 'html', 'json', 'attack'];

export async function tableCommand(opts: { from: string; format: string; compare?: string; out?: NodeJS.WritableStream }): Promise<number> {
  const format = opts.format as TableFormat;
  if (!FORMATS.includes(format)) {
    throw new BpfgateError('usage', `--format ${opts.format}: expected md, html, json or attack`);
  }
  const compare = opts.compare ? await readPreviousRun(opts.compare) : undefined;
  (opts.out ?? process.stdout).write(await renderTableFromDir(opts.from, format, compare ? { compare } : {}));
  return 0;
}
