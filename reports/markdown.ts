/**
 * table.md: a summary line, the subject x cell table with short symbols (✅ pass,
 * ❌ fail + reason, ⚠️ error + reason, ⏭ skip + reason, — not run), and a legend of the
 * reasons present. GitHub-flavoured Markdown, for a README or a job summary.
 * Subjects are untrusted text: they are shown as code spans with pipes escaped, so
 * no policy name can inject Markdown or HTML.
 */
import type { CheckStatus } from '../core/check.js';
import type { ModelPair, ReportModel } from './model.js';

export const STATUS_SYMBOL: Record<CheckStatus, string> = { pass: '✅', fail: '❌', error: '⚠️', skip: '⏭' };
export const NOT_RUN = '—';

/** A code span that holds any text: fences longer than any backtick run inside, pipes escaped for tables. */
function code(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`.replace(/\|/g, '\\|');
}

function pairText(pair: ModelPair | null): string {
  if (!pair) return NOT_RUN;
  const symbol = STATUS_SYMBOL[pair.status];
  return pair.reason ? `${symbol} ${pair.reason}` : symbol;
}

/** The one-line summary, also used as the first line of the table. */
export function summaryLine(model: ReportModel): string {
  const { checks, subjects, cells, counts } = model.summary;
  const parts = (['pass', 'fail', 'error', 'skip'] as const).map((s) => `${STATUS_SYMBOL[s]} ${counts[s]} ${s}`);
  return `**bpfgate**: ${checks} checks of ${subjects} subjects on ${cells} cells: ${parts.join(' · ')}`;
}

/** The table.md text of a model. */
export function renderMarkdown(model: ReportModel): string {
  const lines: string[] = [summaryLine(model), ''];
  if (model.rows.length > 0) {
    lines.push(`| subject | ${model.cells.map((c) => code(c.id)).join(' | ')} |`);
    lines.push(`|---|${model.cells.map(() => ':-:').join('|')}|`);
    for (const row of model.rows) {
      lines.push(`| ${code(row.subject)} | ${model.cells.map((c) => pairText(row.cells[c.id] ?? null)).join(' | ')} |`);
    }
    lines.push('');
  }
  lines.push(`${(['pass', 'fail', 'error', 'skip'] as const).map((s) => `${STATUS_SYMBOL[s]} ${s}`).join(' · ')} · ${NOT_RUN} not run`);
  if (model.reasons.length > 0) {
    lines.push('', '| reason | meaning | checks |', '|---|---|--:|');
    for (const r of model.reasons) lines.push(`| ${code(r.code)} | ${r.description.replace(/\|/g, '\\|')} | ${r.count} |`);
  }
  return `${lines.join('\n')}\n`;
}
