/**
 * table.html: the compatibility report as one self-contained page for a project's site
 * (inline CSS and JS, a Content-Security-Policy that forbids every external resource).
 * In order: a summary, what changed (against the baseline and a previous run), a row
 * per cell with its counts and a bar, filters and search, then a grid per section
 * (kernel features, policies, triggers, nodes, bug reproductions) and what to do about
 * each reason. A grid cell shows a word (ok, FAIL, ERROR, skip) and its reason code;
 * a click opens, under its row, the reason in words, what to do, and every check with
 * its evidence in <details> (hooks as a table).
 * The page stays small: the grid is markup, the checks and evidence are one gzip'd
 * JSON document (base64 in a non-executed <script type="application/gzip">), unpacked
 * by the browser (DecompressionStream) the first time a cell is opened.
 * Invariant: every piece of result text (subjects, checks, evidence, file paths) is
 * untrusted: in markup it goes through `escapeHtml`, in the data it is base64 of
 * gzip (no `<` can reach the parser), and the script puts it on the page with
 * textContent only. Links are the model's (GitHub URLs, or paths made relative).
 */
import { gzipSync } from 'node:zlib';
import type { CheckStatus } from '../core/check.js';
import { ADVICE } from './advice.js';
import { CHANGE_KINDS, COUNT_ORDER, plural, SECTIONS, sectionSizes, sectionSummary, STATUS_MARK, STATUS_ORDER, type CheckState, type ModelPair, type ModelRow, type ReportCell, type ReportModel, type StatusCounts } from './model.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or attribute value -> HTML that shows exactly that text. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch);
}

/** The id of a pair's evidence (row and column indexes, never names, so ids need no escaping). */
export function evidenceId(row: number, col: number): string {
  return `ev-${row}-${col}`;
}

/** Status -> the one-letter class the grid, the filters and the script share. */
const CLASS: Record<CheckStatus, string> = { pass: 'p', fail: 'f', error: 'e', skip: 's' };

/** One rendered list stops here; table.json holds everything. */
const LIST_LIMIT = 300;
/** One check's evidence in the page stops here (results.jsonl has it whole). */
const EVIDENCE_LIMIT = 32 * 1024;

const esc = escapeHtml;

function badge(status: CheckStatus): string {
  return `<b class="b ${CLASS[status]}">${STATUS_MARK[status]}</b>`;
}

function distinct<T>(values: (T | null)[]): T[] {
  return [...new Set(values.filter((v): v is T => v !== null))];
}

function option(value: string, label: string): string {
  return `<option value="${esc(value)}">${esc(label)}</option>`;
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

/** A cell id that may break after its dashes and before a `+variant`. */
function breakable(id: string): string {
  return esc(id).replace(/-/g, '-<wbr>').replace(/\+/g, '<wbr>+');
}

/** A horizontal bar of a cell's counts: CSS only, with the numbers beside it in text. */
function bar(c: StatusCounts): string {
  const total = STATUS_ORDER.reduce((n, s) => n + c[s], 0);
  if (total === 0) return '<span class="bar"></span>';
  const parts = (['pass', 'skip', 'error', 'fail'] as const)
    .filter((s) => c[s] > 0)
    .map((s) => `<i class="${CLASS[s]}" style="width:${((100 * c[s]) / total).toFixed(1)}%"></i>`)
    .join('');
  return `<span class="bar" title="${Math.round((100 * c.pass) / total)}% pass">${parts}</span>`;
}

function cellsSection(model: ReportModel): string {
  // A cluster run's cells are its nodes: their names and runtimes say which machine is which.
  const nodes = model.cells.some((c) => c.node);
  const agents = model.cells.some((c) => c.agent);
  const heads = ['cell', ...(nodes ? ['node', 'runtime'] : []), 'kernel', 'arch', 'pages', 'BPF LSM', ...(agents ? ['agent'] : []), 'passing', ...COUNT_ORDER];
  const rows = model.cells.map((c) => {
    const n = model.summary.perCell[c.id] ?? { pass: 0, fail: 0, error: 0, skip: 0 };
    const lsm = c.lsm ? (c.lsm.includes('bpf') ? 'on' : '<span class="warn">off</span>') : '-';
    const node = nodes ? `<td>${esc(c.node?.name ?? '-')}</td><td title="${esc(c.node?.criSocket ?? '')}">${esc(c.node?.runtime ?? '-')}</td>` : '';
    return (
      `<tr title="${esc(cellTitle(c))}"><th scope="row">${esc(c.id)}</th>${node}<td>${esc(c.release ?? c.kernel ?? '-')}</td><td>${esc(c.arch ?? '-')}</td>` +
      `<td>${c.pages === null ? '-' : `${c.pages}K`}</td><td>${lsm}</td>${agents ? `<td>${esc(c.agent ?? '-')}</td>` : ''}<td>${bar(n)}</td>` +
      COUNT_ORDER.map((s) => `<td class="n${n[s] && s !== 'pass' ? ` ${CLASS[s]}` : ''}">${n[s]}</td>`).join('') +
      '</tr>'
    );
  });
  return (
    `<section id="cells"><h2>${nodes ? 'Nodes' : 'Cells'}</h2>` +
    `<div class="scroll"><table class="cells"><thead><tr>${heads.map((h) => `<th scope="col">${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>` +
    '<p class="about">Counts are subjects (a policy, trigger or feature on a cell), each with its worst check.</p></section>'
  );
}

/** Row and column indexes of each subject and cell, for links from the lists to the evidence. */
interface Index {
  row: Map<string, number>;
  col: Map<string, number>;
}

function pairLink(ix: Index, ref: { section: string; subject: string; cell: string }, text: string): string {
  const { subject, cell } = ref;
  const r = ix.row.get(`${ref.section}\u0000${subject}`);
  const c = ix.col.get(cell);
  return r === undefined || c === undefined ? text : `<a href="#${evidenceId(r, c)}">${text}</a>`;
}

function stateText(s: CheckState | null): string {
  return s ? `${badge(s.status)}${s.reason ? ` ${esc(s.reason)}` : ''}` : '-';
}

function more(n: number, total: number): string {
  return total > n ? `<p class="about">… ${total - n} more in table.json.</p>` : '';
}

function changesSection(model: ReportModel, ix: Index): string {
  const { baseline, comparison } = model;
  if (!baseline && !comparison) return '';
  const parts: string[] = ['<section id="changes"><h2>What changed</h2>'];
  if (baseline) {
    const fixed = baseline.fixed.length ? `; <b>${plural(baseline.fixed.length, 'baseline entry', 'baseline entries')}</b> now pass${baseline.fixed.length === 1 ? 'es' : ''}: remove ${baseline.fixed.length === 1 ? 'it' : 'them'}` : '';
    parts.push(`<p>Against the baseline: <b>${plural(baseline.unexpected.length, 'failure')} it does not list</b> (they fail the gate); ${baseline.expected} it expects${fixed}.</p>`);
    if (baseline.unexpected.length) {
      parts.push('<table class="list"><thead><tr><th>status</th><th>subject</th><th>cell</th><th>check</th><th>reason</th></tr></thead><tbody>');
      for (const u of baseline.unexpected.slice(0, LIST_LIMIT)) {
        parts.push(`<tr><td>${badge(u.status)}</td><td>${pairLink(ix, u, esc(u.subject))}</td><td>${esc(u.cell)}</td><td>${esc(u.check)}</td><td>${esc(u.reason ?? '')}</td></tr>`);
      }
      parts.push(`</tbody></table>${more(LIST_LIMIT, baseline.unexpected.length)}`);
    }
    if (baseline.fixed.length) {
      parts.push(`<ul class="fixed">${baseline.fixed.slice(0, LIST_LIMIT).map((f) => `<li>now passes: <code>${esc(f.subject)}</code> on <code>${esc(f.cell)}</code> (${esc(f.reason)}), baseline entry <code>${esc(f.where)}</code></li>`).join('')}</ul>`);
    }
  }
  if (comparison) {
    const c = comparison.counts;
    parts.push(`<p>Against <code>${esc(comparison.against)}</code>: ${CHANGE_KINDS.map((k) => `<span class="ch ${k}">${c[k]} ${k === 'changed' ? 'changed reason' : k}</span>`).join(', ')}.</p>`);
    if (comparison.changes.length) {
      parts.push('<table class="list"><thead><tr><th>change</th><th>subject</th><th>cell</th><th>check</th><th>before</th><th>now</th></tr></thead><tbody>');
      for (const ch of comparison.changes.slice(0, LIST_LIMIT)) {
        parts.push(
          `<tr class="ch ${ch.kind}"><td>${ch.kind}</td><td>${pairLink(ix, ch, esc(ch.subject))}</td><td>${esc(ch.cell)}</td><td>${esc(ch.check)}</td>` +
            `<td>${stateText(ch.before)}</td><td>${stateText(ch.after)}</td></tr>`,
        );
      }
      parts.push(`</tbody></table>${more(LIST_LIMIT, comparison.changes.length)}`);
    }
  }
  parts.push('</section>');
  return parts.join('');
}

function headerCell(c: ReportCell, col: number): string {
  return `<th scope="col" data-col="${col}" title="${esc(cellTitle(c))}">${breakable(c.id)}</th>`;
}

function rowHead(row: ModelRow): string {
  const l = row.label;
  const src = l.source
    ? l.source.href
      ? `<a class="src" href="${esc(`${l.source.href}#L${l.source.line}`)}">${esc(`${l.source.file}:${l.source.line}`)}</a>`
      : `<span class="src">${esc(`${l.source.file}:${l.source.line}`)}</span>`
    : l.detail && row.section !== 'triggers'
      ? `<span class="src">${esc(l.detail)}</span>`
      : '';
  if (row.section === 'triggers') {
    return `<th scope="row"><span class="tq">${esc(l.technique ?? '')}</span> ${esc(l.name)}<span class="src">${esc(row.subject)}${l.tactic ? ` (${esc(l.tactic)})` : ''}</span></th>`;
  }
  return `<th scope="row"><span class="nm">${esc(l.name)}</span>${src}</th>`;
}

function pairCell(pair: ModelPair | null, r: number, col: number): string {
  if (!pair) return '<td class="n">-</td>';
  const reason = pair.reason ? ` <small>${esc(pair.reason)}</small>` : '';
  return `<td class="${CLASS[pair.status]}"><a href="#${evidenceId(r, col)}">${STATUS_MARK[pair.status]}${reason}</a></td>`;
}

function gridSections(model: ReportModel, rowIndex: Map<ModelRow, number>): string {
  const heads: Record<string, string> = { features: 'feature', policies: 'policy', triggers: 'technique', nodes: 'subject', bugs: 'bug' };
  return SECTIONS.map((section) => {
    const rows = model.rows.filter((r) => r.section === section.id);
    if (rows.length === 0) return '';
    const body = rows
      .map((row) => {
        const r = rowIndex.get(row)!;
        return `<tr data-row="${r}">${rowHead(row)}${model.cells.map((c, col) => pairCell(row.cells[c.id] ?? null, r, col)).join('')}</tr>`;
      })
      .join('\n');
    return (
      `<section id="s-${section.id}" class="grid" data-section="${section.id}"><h2>${esc(section.title)} <small class="count">${rows.length}</small></h2>` +
      `<p class="about">${esc(section.about)}.</p>` +
      `<div class="scroll"><table class="m"><thead><tr><th scope="col">${heads[section.id]}</th>${model.cells.map(headerCell).join('')}</tr></thead>\n<tbody>\n${body}\n</tbody></table></div>` +
      '<p class="none" hidden>Nothing here matches the filters.</p></section>'
    );
  }).join('\n');
}

/** Escaped text whose `code spans` (the advice texts use them) become <code>. */
function withCode(text: string): string {
  return esc(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

function reasonsSection(model: ReportModel): string {
  if (model.reasons.length === 0) return '';
  const items = model.reasons
    .map((r) => `<dt data-code="${esc(r.code)}"><code>${esc(r.code)}</code> <small>${plural(r.count, 'check')}</small></dt><dd><span class="words">${esc(r.description)}</span><br><b>What to do:</b> <span class="todo">${withCode(ADVICE[r.code] ?? '')}</span></dd>`)
    .join('');
  return `<section id="reasons"><h2>Reasons and what to do</h2><p class="about">The advice under a cell's evidence is sharpened by that cell's facts and evidence.</p><dl class="legend">${items}</dl></section>`;
}

/** The checks and evidence of every pair, for the script: `p["R-C"] = [advice, [[check, status, reason, evidence, ms, lane/suite, source], ...]]`. */
function pageData(model: ReportModel, rowIndex: Map<ModelRow, number>): string {
  const evidence: unknown[] = [];
  const evidenceIx = new Map<string, number>();
  const advice: string[] = [];
  const adviceIx = new Map<string, number>();
  const pairs: Record<string, unknown> = {};
  const intern = <T>(value: T, key: string, list: T[], ix: Map<string, number>): number => {
    let i = ix.get(key);
    if (i === undefined) {
      i = list.length;
      list.push(value);
      ix.set(key, i);
    }
    return i;
  };
  for (const row of model.rows) {
    const r = rowIndex.get(row)!;
    const rowFile = row.source?.file;
    model.cells.forEach((cell, col) => {
      const pair = row.cells[cell.id];
      if (!pair) return;
      const checks = pair.checks.map((c) => {
        let text = JSON.stringify(c.evidence);
        if (text.length > EVIDENCE_LIMIT) text = JSON.stringify({ truncated: `${text.length} characters; whole in results.jsonl`, start: text.slice(0, EVIDENCE_LIMIT) });
        const e = intern(JSON.parse(text) as unknown, text, evidence, evidenceIx);
        // A line of the row's own file is linked from the row; another file is named.
        const source = c.source ? (c.source.file === rowFile ? c.source.line : `${c.source.file}:${c.source.line}`) : null;
        return [c.check, CLASS[c.status], c.reason, e, c.durationMs, `${c.lane}/${c.suite}`, source];
      });
      const a = pair.advice ? intern(pair.advice, pair.advice, advice, adviceIx) : -1;
      pairs[`${r}-${col}`] = [a, checks];
    });
  }
  const json = JSON.stringify({ p: pairs, a: advice, e: evidence });
  return gzipSync(json, { level: 9 }).toString('base64');
}

const STYLE = `
:root{--p:#1a7f37;--pb:#dafbe1;--f:#cf222e;--fb:#ffebe9;--e:#9a6700;--eb:#fff8c5;--s:#57606a;--sb:#eaeef2;--line:#d0d7de;--soft:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#fff}
header,main{padding:0 1.2rem}
header{padding-top:1rem;border-bottom:1px solid var(--line);background:var(--soft)}
h1{font-size:1.5rem;margin:0 0 .2rem}
h2{font-size:1.15rem;margin:1.4rem 0 .3rem}
h2 small.count{font-weight:normal;color:var(--s)}
nav{display:flex;gap:1rem;flex-wrap:wrap;padding:.4rem 0 .7rem}
nav a{color:#0969da;text-decoration:none}
code,.src,.tq,table.m small{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.about{color:var(--s);margin:.2rem 0 .5rem}
.b{display:inline-block;min-width:2.4em;padding:0 .35em;border-radius:3px;font:700 11px/1.6 ui-monospace,monospace;text-align:center;border:1px solid currentColor}
.b.p{color:var(--p);background:var(--pb)}.b.f{color:var(--f);background:var(--fb)}.b.e{color:var(--e);background:var(--eb)}.b.s{color:var(--s);background:var(--sb)}
.warn{color:var(--f);font-weight:600}
table{border-collapse:collapse}
table.cells th,table.cells td,table.list th,table.list td{border-bottom:1px solid var(--line);padding:.2rem .6rem;text-align:left;white-space:nowrap}
table.cells td.n{text-align:right;font-variant-numeric:tabular-nums}
table.cells td.f{color:var(--f);font-weight:600}table.cells td.e{color:var(--e);font-weight:600}
.bar{display:inline-flex;width:9rem;height:.8rem;border-radius:2px;overflow:hidden;background:var(--sb);vertical-align:middle;border:1px solid var(--line)}
.bar i{display:block;height:100%}.bar i.p{background:#2da44e}.bar i.f{background:#cf222e}.bar i.e{background:#d4a72c}.bar i.s{background:#8c959f}
tr.ch.worse td:first-child{color:var(--f);font-weight:600}tr.ch.better td:first-child{color:var(--p);font-weight:600}
#filters{position:sticky;top:0;z-index:3;display:flex;gap:.4rem 1rem;flex-wrap:wrap;align-items:center;margin:1rem 0 .4rem;padding:.5rem .7rem;background:var(--soft);border:1px solid var(--line);border-radius:6px}
#filters input{width:16rem}
#shown{color:var(--s)}
.scroll{overflow-x:auto;max-width:100%}
table.m th,table.m td{border:1px solid var(--line);padding:.15rem .35rem;text-align:center;vertical-align:middle}
table.m thead th{background:var(--soft);font-weight:600;font-size:12px;min-width:4.5rem;max-width:7rem}
table.m thead th:first-child{text-align:left}
table.m tbody th{text-align:left;font-weight:normal;background:#fff;position:sticky;left:0;z-index:1;min-width:14rem;max-width:26rem}
table.m .nm{font-weight:600}
table.m th .src{display:block;font-size:11px;color:var(--s);overflow-wrap:anywhere}
table.m th a.src{color:#0969da}
table.m .tq{font-weight:700}
.m tr[data-row]>td a{display:block;color:inherit;text-decoration:none;font:700 11px/1.3 ui-monospace,monospace}
.m tr[data-row]>td small{display:block;font-weight:normal;font-size:10px;overflow-wrap:anywhere;max-width:8rem;margin:auto}
.m tr[data-row]>td.p{background:var(--pb);color:var(--p)}.m tr[data-row]>td.f{background:var(--fb);color:var(--f)}.m tr[data-row]>td.e{background:var(--eb);color:var(--e)}.m tr[data-row]>td.s{background:var(--sb);color:var(--s)}
.m tr[data-row]>td.n{color:#8c959f}
.m tr[data-row]>td.dim{opacity:.25}
table.m td.open{outline:3px solid #0969da;outline-offset:-3px}
tr.detail>td{text-align:left;background:#fff;padding:.6rem .8rem;border:2px solid #0969da}
.panel h3{margin:0 0 .3rem;font-size:1rem}
.panel a{color:#0969da}
.panel code,.legend .todo code{background:var(--soft);padding:0 .2em;border-radius:3px}
.panel .todo{background:#ddf4ff;border-left:4px solid #0969da;padding:.3rem .6rem;margin:.4rem 0}
.panel details{border:1px solid var(--line);border-radius:6px;margin:.3rem 0;padding:.2rem .5rem}
.panel summary{cursor:pointer}
.panel summary .meta{color:var(--s);font-size:12px}
.panel table.hooks td,.panel table.hooks th{border:1px solid var(--line);padding:.1rem .4rem;text-align:left;font-size:12px;vertical-align:top}
.panel dl.ev{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.3rem 0}
.panel dl.ev dt{font-family:ui-monospace,monospace;color:var(--s)}
.panel dl.ev dd{margin:0}
pre{margin:0;white-space:pre-wrap;word-break:break-word;max-width:80rem;font-size:12px}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem}
dl.legend dd{margin:0}
footer{color:var(--s);padding:1rem 1.2rem;border-top:1px solid var(--line);margin-top:2rem}
`;

/**
 * Filters and search read the markup only (classes, <small> reason codes, the row
 * heads' text); a cell's evidence comes from the packed data, unpacked once. Every
 * text from the data goes on the page through textContent.
 */
const SCRIPT = `
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e; };
  const MARK = { p: 'ok', f: 'FAIL', e: 'ERROR', s: 'skip' };
  const STATUS = { p: 'pass', f: 'fail', e: 'error', s: 'skip' };
  const facts = JSON.parse($('bpfgate-cells').textContent);
  const words = new Map([...document.querySelectorAll('#reasons dt[data-code]')].map((dt) => [dt.dataset.code, dt.nextElementSibling.querySelector('.words').textContent]));
  const f = { q: $('f-q'), status: $('f-status'), section: $('f-section'), arch: $('f-arch'), kernel: $('f-kernel'), cell: $('f-cell'), reason: $('f-reason') };
  const sections = [...document.querySelectorAll('section.grid')];
  const reasonOf = (td) => { const s = td.querySelector('small'); return s ? s.textContent : ''; };
  const statusOf = (td) => (/^[pfes]$/.test(td.className.split(' ')[0]) ? td.className.split(' ')[0] : '');

  // Every cell that is not green says its reason in words when pointed at.
  for (const td of document.querySelectorAll('table.m td')) {
    const st = statusOf(td);
    if (st && st !== 'p') td.title = STATUS[st] + (reasonOf(td) ? ': ' + (words.get(reasonOf(td)) || reasonOf(td)) : '');
  }

  function apply() {
    const q = f.q.value.toLowerCase().split(/\\s+/).filter(Boolean);
    const status = f.status.value, reason = f.reason.value, section = f.section.value;
    const cols = new Set(facts.map((c, i) => (!f.arch.value || c.arch === f.arch.value) && (!f.kernel.value || c.kernel === f.kernel.value) && (!f.cell.value || c.id === f.cell.value) ? String(i) : null).filter((x) => x !== null));
    const okStatus = (st) => !status || (status === 'np' ? st !== 'p' : st === status);
    let shown = 0, total = 0;
    for (const sec of sections) {
      const on = !section || sec.dataset.section === section;
      sec.hidden = !on;
      let here = 0;
      for (const tr of sec.querySelectorAll('tbody tr[data-row]')) {
        total++;
        const text = tr.firstElementChild.textContent.toLowerCase();
        const named = q.every((w) => text.includes(w));
        let hit = false;
        [...tr.children].slice(1).forEach((td, i) => {
          const visible = cols.has(String(i));
          td.hidden = !visible;
          const st = statusOf(td);
          const match = visible && st !== '' && okStatus(st) && (!reason || reasonOf(td) === reason);
          td.classList.toggle('dim', Boolean(status || reason) && !match);
          hit = hit || match;
        });
        const show = on && named && hit;
        tr.hidden = !show;
        const next = tr.nextElementSibling;
        if (next && next.classList.contains('detail')) next.hidden = !show;
        if (show) here++;
      }
      for (const th of sec.querySelectorAll('thead th[data-col]')) th.hidden = !cols.has(th.dataset.col);
      sec.querySelector('p.none').hidden = here > 0 || !on;
      sec.querySelector('.scroll').hidden = here === 0;
      sec.querySelector('h2 .count').textContent = here === sec.querySelectorAll('tbody tr[data-row]').length ? String(here) : here + ' of ' + sec.querySelectorAll('tbody tr[data-row]').length;
      if (on) shown += here;
    }
    $('shown').textContent = shown + ' of ' + total + ' rows, ' + cols.size + ' of ' + facts.length + ' cells';
  }

  let packed;
  function data() {
    if (!packed) {
      packed = (async () => {
        const bin = atob($('bpfgate-data').textContent.trim());
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
        return JSON.parse(text);
      })();
    }
    return packed;
  }

  /** Text whose \`code spans\` become <code>, as text nodes only. */
  function withCode(text) {
    const out = document.createDocumentFragment();
    String(text).split('\u0060').forEach((part, i) => out.append(i % 2 ? el('code', '', part) : part));
    return out;
  }

  function value(v) {
    if (v === null || typeof v !== 'object') return el('span', '', v === null ? 'null' : v);
    return el('pre', '', JSON.stringify(v, null, 2));
  }

  /** Hook-level evidence of a policy: one line per hook, what it was attached to, what fired it, what the kernel said. */
  function hooksTable(h) {
    const box = el('div');
    const t = el('table', 'hooks');
    const head = t.createTHead().insertRow();
    for (const c of ['hook', 'line', 'attached as', 'fired by (hits)', 'kernel says']) head.appendChild(el('th', '', c));
    const body = t.createTBody();
    for (const n of h.notable || []) {
      const tr = body.insertRow();
      const fired = n.firedBy ? Object.entries(n.firedBy).map(([k, v]) => k + ' (' + v + ')').join(', ') + (n.firedByCount > Object.keys(n.firedBy).length ? ', +' + (n.firedByCount - Object.keys(n.firedBy).length) + ' more' : '') : '';
      for (const c of [n.hook, n.line, n.target || n.untargeted || '', fired, n.refused || '']) tr.appendChild(el('td', '', c === undefined ? '' : c));
    }
    box.appendChild(el('p', '', (h.total ?? '?') + (h.total === 1 ? ' hook' : ' hooks') + (h.notFiredCount ? '; ' + h.notFiredCount + ' did not fire: ' + (h.notFired || []).join(', ') + (h.notFiredCount > (h.notFired || []).length ? ', …' : '') : '')));
    if ((h.notable || []).length) box.appendChild(t);
    return box;
  }

  function evidenceView(ev) {
    const dl = el('dl', 'ev');
    for (const [k, v] of Object.entries(ev || {})) {
      dl.appendChild(el('dt', '', k));
      const dd = el('dd');
      dd.appendChild(k === 'hooks' && v && typeof v === 'object' && !Array.isArray(v) && 'total' in v ? hooksTable(v) : value(v));
      dl.appendChild(dd);
    }
    if (!dl.children.length) dl.appendChild(el('dd', '', '(no evidence recorded)'));
    return dl;
  }

  function closeDetail() {
    for (const d of document.querySelectorAll('tr.detail')) d.remove();
    for (const td of document.querySelectorAll('table.m td.open')) td.classList.remove('open');
  }

  async function openPair(r, c, scroll) {
    const tr = document.querySelector('tr[data-row="' + r + '"]');
    const td = tr && tr.children[Number(c) + 1];
    if (!td || !statusOf(td)) return;
    closeDetail();
    td.classList.add('open');
    const row = tr.parentNode.insertRow(tr.sectionRowIndex + 1);
    row.className = 'detail';
    row.id = 'ev-' + r + '-' + c;
    const cell = row.insertCell();
    cell.colSpan = tr.children.length;
    const panel = el('div', 'panel');
    cell.appendChild(panel);
    const st = statusOf(td), reason = reasonOf(td);
    const h3 = el('h3');
    const head = tr.firstElementChild.cloneNode(true);
    for (const x of head.querySelectorAll('.src')) x.remove();
    h3.append(el('span', 'nm', head.textContent.trim()), ' on ', el('code', '', facts[c].id), ': ', el('b', 'b ' + st, MARK[st]), reason ? ' ' + reason : '');
    panel.appendChild(h3);
    if (reason) panel.appendChild(el('p', 'words', words.get(reason) || reason));
    const close = el('button', 'close', 'close');
    close.type = 'button';
    close.addEventListener('click', () => { closeDetail(); history.replaceState(null, '', location.pathname + location.search); });
    let d;
    try { d = await data(); } catch (err) { panel.appendChild(el('p', 'warn', 'This browser cannot unpack the evidence (' + err + '); table.json has it.')); return; }
    const [a, checks] = d.p[r + '-' + c] || [-1, []];
    if (a >= 0) { const p = el('p', 'todo'); p.append(el('b', '', 'What to do: '), withCode(d.a[a])); panel.appendChild(p); }
    const src = tr.querySelector('a.src');
    let opened = false;
    for (const [check, cst, creason, e, ms, where, source] of checks) {
      const det = el('details');
      const sum = el('summary');
      sum.append(el('b', 'b ' + cst, MARK[cst]), ' ', el('code', '', check), creason ? ' ' + creason : '');
      const meta = el('span', 'meta', ' · ' + where + ' · ' + ms + ' ms');
      sum.appendChild(meta);
      if (source !== null && source !== undefined) {
        meta.append(' · ');
        if (typeof source === 'number' && src) { const a = el('a', '', 'line ' + source); a.href = src.href.replace(/#.*$/, '') + '#L' + source; meta.appendChild(a); }
        else meta.append(typeof source === 'number' ? 'line ' + source : String(source));
      }
      det.appendChild(sum);
      det.appendChild(evidenceView(d.e[e]));
      // The check that decides the cell opens with it; the others are one click away.
      if (!opened && cst === st && (creason || '') === (reason || '')) { det.open = true; opened = true; }
      panel.appendChild(det);
    }
    panel.appendChild(close);
    if (scroll) row.scrollIntoView({ block: 'nearest' });
  }

  function fromHash() {
    const m = /^#ev-(\\d+)-(\\d+)$/.exec(location.hash);
    if (m) openPair(m[1], m[2], true);
  }

  for (const x of Object.values(f)) x.addEventListener(x.tagName === 'INPUT' ? 'input' : 'change', apply);
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  document.addEventListener('click', (event) => {
    const a = event.target.closest('table.m td a[href^="#ev-"]');
    if (!a) return;
    event.preventDefault();
    const m = /^#ev-(\\d+)-(\\d+)$/.exec(a.getAttribute('href'));
    if (!m) return;
    const open = document.getElementById('ev-' + m[1] + '-' + m[2]);
    if (open) { closeDetail(); history.replaceState(null, '', location.pathname + location.search); return; }
    history.replaceState(null, '', '#ev-' + m[1] + '-' + m[2]);
    openPair(m[1], m[2], false);
  });
  window.addEventListener('hashchange', fromHash);
  apply();
  fromHash();
})();
`;

function filters(model: ReportModel): string {
  const { cells } = model;
  const present = new Set(model.rows.map((r) => r.section));
  const statuses = (['f', 'e', 's', 'p'] as const).map((c) => {
    const s = (Object.keys(CLASS) as CheckStatus[]).find((k) => CLASS[k] === c)!;
    return option(c, `${STATUS_MARK[s]} (${s})`);
  });
  return (
    '<form id="filters" role="search">' +
    '<label>Search <input id="f-q" type="search" placeholder="policy, file, technique" autocomplete="off"></label>' +
    `<label>Status <select id="f-status"><option value="">all</option><option value="np">not ok</option>${statuses.join('')}</select></label>` +
    `<label>Section <select id="f-section"><option value="">all</option>${SECTIONS.filter((s) => present.has(s.id)).map((s) => option(s.id, s.title)).join('')}</select></label>` +
    `<label>Arch <select id="f-arch"><option value="">all</option>${distinct(cells.map((c) => c.arch)).map((a) => option(a, a)).join('')}</select></label>` +
    `<label>Kernel <select id="f-kernel"><option value="">all</option>${distinct(cells.map((c) => c.kernel)).map((k) => option(k, k)).join('')}</select></label>` +
    `<label>Cell <select id="f-cell"><option value="">all</option>${cells.map((c) => option(c.id, c.id)).join('')}</select></label>` +
    `<label>Reason <select id="f-reason"><option value="">all</option>${model.reasons.map((r) => option(r.code, `${r.code} (${r.count})`)).join('')}</select></label>` +
    '<output id="shown"></output></form>'
  );
}

/** JSON that is safe inside <script>: no `<`, `>` or `&` reaches the HTML parser. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The table.html text of a model. */
export function renderHtml(model: ReportModel): string {
  const rowIndex = new Map(model.rows.map((r, i) => [r, i]));
  const ix: Index = { row: new Map(model.rows.map((r, i) => [`${r.section}\u0000${r.subject}`, i])), col: new Map(model.cells.map((c, i) => [c.id, i])) };
  const counts = COUNT_ORDER.map((s) => `${model.summary.counts[s]} ${badge(s)}`).join(' · ');
  const bySection = sectionSizes(model);
  const what = sectionSummary(model);
  const run = model.run ? ` · bpfgate ${esc(model.run.bpfgate)}, run of ${esc(model.run.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}` : '';
  const nav = [
    model.baseline || model.comparison ? '<a href="#changes">What changed</a>' : '',
    `<a href="#cells">${model.cells.some((c) => c.node) ? 'Nodes' : 'Cells'}</a>`,
    ...bySection.map(([s, n]) => `<a href="#s-${s.id}">${esc(s.title)} (${n})</a>`),
    model.reasons.length ? '<a href="#reasons">What to do</a>' : '',
  ].filter(Boolean);
  const facts = model.cells.map((c) => ({ id: c.id, arch: c.arch, kernel: c.kernel }));
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
<header>
<h1>Policy compatibility</h1>
<p id="summary">${esc(what || 'nothing')} on ${plural(model.summary.cells, 'cell')}; ${plural(model.summary.checks, 'check')}: ${counts}${run}</p>
<nav>${nav.join('')}</nav>
</header>
<main>
${changesSection(model, ix)}
${cellsSection(model)}
${filters(model)}
${gridSections(model, rowIndex)}
${reasonsSection(model)}
</main>
<footer>Made by bpfgate. A pass is backed by runtime evidence: a hook seen to fire, an event the agent exported. The run's output also has table.md, table.json, junit.xml, results.jsonl and attack-layer.json (an ATT&amp;CK Navigator layer of what the policies caught).</footer>
<script type="application/json" id="bpfgate-cells">${scriptJson(facts)}</script>
<script type="application/gzip" id="bpfgate-data">${pageData(model, rowIndex)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
