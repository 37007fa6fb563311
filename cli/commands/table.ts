/** `bpfgate table --from DIR --format md|html|json`: render a table from a results directory. */
import { BpfgateError } from '../../core/errors.js';
import { renderTableFromDir } from '../../reports/index.js';

export async function tableCommand(opts: { from: string; format: string; out?: NodeJS.WritableStream }): Promise<number> {
  const format = opts.format;
  if (format !== 'md' && format !== 'html' && format !== 'json') {
    throw new BpfgateError('usage', `--format ${format}: expected md, html or json`);
  }
  (opts.out ?? process.stdout).write(await renderTableFromDir(opts.from, format));
  return 0;
}
