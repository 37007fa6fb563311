/**
 * table.html: one self-contained page (inline CSS and JS, a Content-Security-Policy
 * that forbids every external resource) for a static site. A reader filters columns
 * by arch and kernel and rows by reason and status; each subject x cell links to a
 * <details id="ev-ROW-COL"> block with that pair's checks and evidence, which the
 * page opens when its anchor is followed.
 * Invariant: every piece of result text (subjects, checks, evidence, file paths) is
 * untrusted and goes through `escapeHtml`; the script reads data only from the DOM,
 * so no result text is ever placed inside <script>.
 */
import type { CheckStatus } from '../core/check.js';
import type { ModelPair, ModelRow, ReportCell, ReportModel } from './model.js';
import { NOT_RUN, STATUS_SYMBOL } from './markdown.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or attribute value -> HTML that shows exactly that text. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch);
}

/** The id of a pair's evidence block; indexes, never names, so ids need no escaping. */
export function evidenceId(row: number, col: number): string {
  return `ev-${row}-${col}`;
}

function distinct<T>(values: (T | null)[]): T[] {
  return [...new Set(values.filter((v): v is T => v !== null))];
}

function option(value: string, label: string): string {
  return `<option value="${escapeHtml(value)}">${escapeHtml(label)}</option>`;
}

function cellTitle(c: ReportCell): string {
  const facts = [
    c.kernelSource,
    c.release,
    c.pages === null ? null : `${c.pages}K pages`,
    c.bootArgs.length > 0 ? `boot: ${c.bootArgs.join(' ')}` : null,
    c.lsm ? `LSMs: ${c.lsm.join(',')}` : null,
    c.agent,
    c.platform === null ? null : `${c.platform}${c.accel ? ` (${c.accel})` : ''}`,
  ];
  return facts.filter((f) => f !== null).join('; ');
}

function headerCell(c: ReportCell, col: number): string {
  return `<th scope="col" data-col="${col}" data-arch="${escapeHtml(c.arch ?? '')}" data-kernel="${escapeHtml(c.kernel ?? '')}" title="${escapeHtml(cellTitle(c))}">${escapeHtml(c.id)}</th>`;
}

function pairCell(pair: ModelPair | null, row: number, col: number): string {
  if (!pair) return `<td data-col="${col}" class="none">${NOT_RUN}</td>`;
  const label = `${STATUS_SYMBOL[pair.status]}${pair.reason ? ` ${escapeHtml(pair.reason)}` : ''}`;
  return (
    `<td data-col="${col}" data-status="${pair.status}" data-reasons="${escapeHtml(pair.reasons.join(' '))}" class="st-${pair.status}">` +
    `<a href="#${evidenceId(row, col)}" title="${pair.checks.length} check(s)">${label}</a></td>`
  );
}

function tableRow(row: ModelRow, r: number, cells: ReportCell[]): string {
  const tds = cells.map((c, col) => pairCell(row.cells[c.id] ?? null, r, col)).join('');
  return `<tr data-row="${r}"><th scope="row" title="${escapeHtml(row.suites.join(', '))}">${escapeHtml(row.subject)}</th>${tds}</tr>`;
}

function evidenceBlock(row: ModelRow, pair: ModelPair, r: number, col: number, cell: ReportCell): string {
  const checks = pair.checks
    .map((c) => {
      const source = c.source ? `${c.source.file}:${c.source.line}` : '';
      return (
        `<tr class="st-${c.status}"><td>${escapeHtml(c.check)}</td><td>${STATUS_SYMBOL[c.status]} ${c.status}</td>` +
        `<td>${escapeHtml(c.reason ?? '')}</td><td>${escapeHtml(`${c.lane} / ${c.suite}`)}</td><td>${escapeHtml(source)}</td>` +
        `<td>${c.durationMs} ms</td><td><pre>${escapeHtml(JSON.stringify(c.evidence, null, 2))}</pre></td></tr>`
      );
    })
    .join('\n');
  return (
    `<details id="${evidenceId(r, col)}" data-row="${r}" data-col="${col}">` +
    `<summary>${STATUS_SYMBOL[pair.status]} <b>${escapeHtml(row.subject)}</b> on <b>${escapeHtml(cell.id)}</b>: ${pair.status}` +
    `${pair.reason ? ` (${escapeHtml(pair.reason)})` : ''}</summary>\n` +
    `<table class="checks"><thead><tr><th>check</th><th>status</th><th>reason</th><th>lane / suite</th><th>source</th><th>time</th><th>evidence</th></tr></thead>\n<tbody>${checks}</tbody></table></details>`
  );
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .3rem}
#filters{display:flex;gap:1rem;flex-wrap:wrap;align-items:center;margin:.8rem 0;padding:.5rem;background:#f6f8fa;border-radius:6px}
#matrix{border-collapse:collapse}
#matrix th,#matrix td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:center;white-space:nowrap}
#matrix thead th{position:sticky;top:0;background:#f6f8fa}
#matrix tbody th{text-align:left;position:sticky;left:0;background:#fff;font-family:ui-monospace,monospace}
#matrix td a{text-decoration:none;color:inherit;display:block}
.st-pass{background:#dafbe1}.st-fail{background:#ffebe9}.st-error{background:#fff8c5}.st-skip{background:#eaeef2}
td.none{color:#8c959f}
td.dim{opacity:.3}
details{margin:.3rem 0;border:1px solid #d0d7de;border-radius:6px;padding:.3rem .6rem}
details[open]{box-shadow:0 0 0 2px #0969da}
table.checks{border-collapse:collapse;margin:.4rem 0}
table.checks td,table.checks th{border:1px solid #d0d7de;padding:.2rem .4rem;vertical-align:top;text-align:left}
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60rem}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dl.legend dt{font-family:ui-monospace,monospace}
`;

/** Reads filters from the select boxes and data-* attributes only; opens the evidence block an anchor targets. */
const SCRIPT = `
(() => {
  const sel = (id) => document.getElementById(id);
  const filters = { arch: sel('f-arch'), kernel: sel('f-kernel'), reason: sel('f-reason'), status: sel('f-status') };
  const heads = [...document.querySelectorAll('#matrix thead th[data-col]')];
  const rows = [...document.querySelectorAll('#matrix tbody tr[data-row]')];
  function apply() {
    const arch = filters.arch.value, kernel = filters.kernel.value, reason = filters.reason.value, status = filters.status.value;
    const cols = new Set(heads.filter((h) => (!arch || h.dataset.arch === arch) && (!kernel || h.dataset.kernel === kernel)).map((h) => h.dataset.col));
    const matches = (td) => td.dataset.status !== undefined
      && (!reason || td.dataset.reasons.split(' ').includes(reason))
      && (!status || td.dataset.status === status);
    const shownRows = new Set();
    for (const tr of rows) {
      let show = false;
      for (const td of tr.querySelectorAll('td[data-col]')) {
        const visible = cols.has(td.dataset.col);
        td.hidden = !visible;
        const hit = visible && matches(td);
        td.classList.toggle('dim', Boolean(reason || status) && !hit);
        show = show || hit;
      }
      tr.hidden = !show;
      if (show) shownRows.add(tr.dataset.row);
    }
    for (const th of heads) th.hidden = !cols.has(th.dataset.col);
    for (const d of document.querySelectorAll('#evidence details')) d.hidden = !(cols.has(d.dataset.col) && shownRows.has(d.dataset.row));
    sel('shown').textContent = shownRows.size + ' of ' + rows.length + ' subjects, ' + cols.size + ' of ' + heads.length + ' cells';
  }
  function openTarget() {
    const target = location.hash.length > 1 ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
    if (target && target.tagName === 'DETAILS') {
      target.open = true;
      target.scrollIntoView({ block: 'start' });
    }
  }
  for (const f of Object.values(filters)) f.addEventListener('change', apply);
  // Following the same anchor twice fires no hashchange: open the block on the click itself too.
  sel('matrix').addEventListener('click', (event) => {
    const link = event.target.closest('a[href^="#ev-"]');
    const target = link ? document.getElementById(link.getAttribute('href').slice(1)) : null;
    if (target) target.open = true;
  });
  window.addEventListener('hashchange', openTarget);
  apply();
  openTarget();
})();
`;

/** The table.html text of a model. */
export function renderHtml(model: ReportModel): string {
  const { cells, rows } = model;
  const statuses = (['error', 'fail', 'skip', 'pass'] as CheckStatus[]).filter((s) => model.summary.counts[s] > 0);
  const counts = (['pass', 'fail', 'error', 'skip'] as CheckStatus[]).map((s) => `${STATUS_SYMBOL[s]} ${model.summary.counts[s]} ${s}`).join(' · ');
  const evidence = rows
    .flatMap((row, r) =>
      cells.map((cell, col) => {
        const pair = row.cells[cell.id];
        return pair ? evidenceBlock(row, pair, r, col, cell) : '';
      }),
    )
    .filter((s) => s !== '')
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bpfgate: policy compatibility</title>
<style>${STYLE}</style>
</head>
<body>
<h1>bpfgate: policy compatibility</h1>
<p id="summary">${model.summary.checks} checks of ${model.summary.subjects} subjects on ${model.summary.cells} cells: ${counts}</p>
<form id="filters">
<label>Arch <select id="f-arch"><option value="">all</option>${distinct(cells.map((c) => c.arch)).map((a) => option(a, a)).join('')}</select></label>
<label>Kernel <select id="f-kernel"><option value="">all</option>${distinct(cells.map((c) => c.kernel)).map((k) => option(k, k)).join('')}</select></label>
<label>Reason <select id="f-reason"><option value="">all</option>${model.reasons.map((r) => option(r.code, `${r.code} (${r.count})`)).join('')}</select></label>
<label>Status <select id="f-status"><option value="">all</option>${statuses.map((s) => option(s, `${STATUS_SYMBOL[s]} ${s}`)).join('')}</select></label>
<span id="shown"></span>
</form>
<table id="matrix">
<thead><tr><th scope="col">subject</th>${cells.map(headerCell).join('')}</tr></thead>
<tbody>
${rows.map((row, r) => tableRow(row, r, cells)).join('\n')}
</tbody>
</table>
<section id="legend"><h2>Reasons</h2>
<dl class="legend">${model.reasons.map((r) => `<dt>${escapeHtml(r.code)}</dt><dd>${escapeHtml(r.description)} (${r.count} checks)</dd>`).join('')}</dl>
</section>
<section id="evidence"><h2>Evidence</h2>
${evidence}
</section>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
