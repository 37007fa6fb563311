/**
 * table.md: the report as GitHub-flavoured Markdown, for a README or a job summary, in
 * the order of table.html: a summary line, what changed (against the baseline and a
 * previous run), a row per cell with its counts, then a table per section (kernel
 * features, policies, triggers, nodes, bug reproductions) and what to do about each
 * reason present. Marks are plain words (ok, FAIL, ERROR, skip, - not run): no font
 * needs an emoji for them.
 * Subjects, files and evidence are untrusted: they are shown as code spans with pipes
 * escaped, so no policy name can inject Markdown or HTML; links are URLs the model built.
 */
import type { CheckStatus } from '../core/check.js';
import { compareReasons, COUNT_ORDER, plural, SECTIONS, sectionSummary, STATUS_MARK, STATUS_ORDER, type ModelPair, type ModelRow, type ReportModel, type StatusCounts } from './model.js';

export const NOT_RUN = '-';

/** Lists in Markdown stop here; table.json and table.html hold the rest. */
const LIST_LIMIT = 100;
/** Subjects named under one piece of advice. */
const NAMED_LIMIT = 12;

/** A code span that holds any text: fences longer than any backtick run inside, pipes escaped for tables. */
export function code(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`.replace(/\|/g, '\\|');
}

/** Plain prose inside a table cell: pipes escaped, one line. */
const prose = (text: string) => text.replace(/[\r\n]+/g, ' ').replace(/\|/g, '\\|');

function mark(status: CheckStatus): string {
  return status === 'fail' || status === 'error' ? `**${STATUS_MARK[status]}**` : STATUS_MARK[status];
}

function pairText(pair: ModelPair | null): string {
  if (!pair) return NOT_RUN;
  return pair.reason ? `${mark(pair.status)} ${pair.reason}` : mark(pair.status);
}

function countsText(c: StatusCounts): string {
  return COUNT_ORDER.map((s) => `${c[s]} ${s}`).join(', ');
}

/** The one-line summary, also the first line of the job summary. */
export function summaryLine(model: ReportModel): string {
  const what = sectionSummary(model);
  return `**bpfgate**: ${what || 'nothing'} on ${plural(model.summary.cells, 'cell')}; ${plural(model.summary.checks, 'check')}: ${countsText(model.summary.counts)}`;
}

/** `[########..] 80%`: the share of a cell's subjects that pass. */
export function textBar(c: StatusCounts, width = 10): string {
  const total = STATUS_ORDER.reduce((n, s) => n + c[s], 0);
  if (total === 0) return NOT_RUN;
  const filled = Math.round((c.pass / total) * width);
  return `\`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]\` ${Math.round((100 * c.pass) / total)}%`;
}

function changesSection(model: ReportModel): string[] {
  const { baseline, comparison } = model;
  if (!baseline && !comparison) return [];
  const lines = ['### What changed', ''];
  if (baseline) {
    const fixed = baseline.fixed.length ? `; ${plural(baseline.fixed.length, 'baseline entry', 'baseline entries')} now ${baseline.fixed.length === 1 ? 'passes' : 'pass'} (remove ${baseline.fixed.length === 1 ? 'it' : 'them'})` : '';
    lines.push(`Against the baseline: **${plural(baseline.unexpected.length, 'failure')} it does not list**; ${baseline.expected} it expects${fixed}.`, '');
    if (baseline.unexpected.length) {
      lines.push('| status | subject | cell | check | reason |', '|---|---|---|---|---|');
      for (const r of baseline.unexpected.slice(0, LIST_LIMIT)) lines.push(`| ${mark(r.status)} | ${code(r.subject)} | ${code(r.cell)} | ${code(r.check)} | ${r.reason ?? ''} |`);
      if (baseline.unexpected.length > LIST_LIMIT) lines.push(`| | ... ${baseline.unexpected.length - LIST_LIMIT} more in table.json | | | |`);
      lines.push('');
    }
    if (baseline.fixed.length) {
      for (const f of baseline.fixed.slice(0, LIST_LIMIT)) lines.push(`- now passes: ${code(f.subject)} on ${code(f.cell)} (${f.reason}), baseline entry ${code(f.where)}`);
      lines.push('');
    }
  }
  if (comparison) {
    const c = comparison.counts;
    lines.push(`Against ${code(comparison.against)}: ${c.worse} worse, ${c.changed} changed reason, ${c.better} better, ${c.new} new, ${c.gone} gone.`, '');
    if (comparison.changes.length) {
      const state = (s: { status: CheckStatus; reason: string | null } | null) => (s ? `${mark(s.status)}${s.reason ? ` ${s.reason}` : ''}` : NOT_RUN);
      lines.push('| change | subject | cell | check | before | now |', '|---|---|---|---|---|---|');
      for (const ch of comparison.changes.slice(0, LIST_LIMIT)) {
        lines.push(`| ${ch.kind} | ${code(ch.subject)} | ${code(ch.cell)} | ${code(ch.check)} | ${state(ch.before)} | ${state(ch.after)} |`);
      }
      if (comparison.changes.length > LIST_LIMIT) lines.push(`| ... | ${comparison.changes.length - LIST_LIMIT} more in table.json | | | | |`);
      lines.push('');
    }
  }
  return lines;
}

function cellsSection(model: ReportModel): string[] {
  if (model.cells.length === 0) return [];
  // A cluster run's cells are its nodes: their names and runtimes say which machine is which.
  const nodes = model.cells.some((c) => c.node);
  const agents = model.cells.some((c) => c.agent);
  const heads = ['cell', ...(nodes ? ['node', 'runtime'] : []), 'kernel', 'arch', 'pages', 'BPF LSM', ...(agents ? ['agent'] : []), 'passing'];
  const lines = [`### ${nodes ? 'Nodes' : 'Cells'}`, '', `| ${heads.join(' | ')} | pass | fail | error | skip |`, `|${heads.map(() => '---').join('|')}|--:|--:|--:|--:|`];
  for (const c of model.cells) {
    const n = model.summary.perCell[c.id] ?? { pass: 0, fail: 0, error: 0, skip: 0 };
    const lsm = c.lsm ? (c.lsm.includes('bpf') ? 'on' : '**off**') : NOT_RUN;
    const facts = [
      code(c.id),
      ...(nodes ? [c.node ? code(c.node.name) : NOT_RUN, c.node ? prose(c.node.runtime) : NOT_RUN] : []),
      c.release ?? c.kernel ?? NOT_RUN,
      c.arch ?? NOT_RUN,
      c.pages === null ? NOT_RUN : `${c.pages}K`,
      lsm,
      ...(agents ? [c.agent ? prose(c.agent) : NOT_RUN] : []),
      textBar(n),
    ];
    lines.push(`| ${facts.join(' | ')} | ${n.pass} | ${n.fail} | ${n.error} | ${n.skip} |`);
  }
  lines.push('', 'Counts are subjects (a policy, trigger or feature on a cell), each with its worst check.', '');
  return lines;
}

/** The first column(s) of a row: the name users know, and where it comes from. */
function rowHead(row: ModelRow): string[] {
  const l = row.label;
  if (row.section === 'policies') {
    const where = l.source ? `${l.source.file}:${l.source.line}` : (l.detail ?? '');
    const file = !where ? '' : l.source?.href ? `[${code(where)}](<${l.source.href}#L${l.source.line}>)` : code(where);
    return [code(l.name), file];
  }
  if (row.section === 'triggers') return [l.technique ? code(l.technique) : '', `${prose(l.name)} (${code(row.subject)})`];
  return [code(row.subject)];
}

const HEADS: Record<string, string[]> = { policies: ['policy', 'file'], triggers: ['technique', 'trigger'] };

function gridSections(model: ReportModel): string[] {
  const lines: string[] = [];
  for (const section of SECTIONS) {
    const rows = model.rows.filter((r) => r.section === section.id);
    if (rows.length === 0) continue;
    const heads = HEADS[section.id] ?? [section.id === 'features' ? 'feature' : 'subject'];
    lines.push(`### ${section.title} (${rows.length})`, '', `${section.about[0]?.toUpperCase()}${section.about.slice(1)}.`, '');
    lines.push(`| ${heads.join(' | ')} | ${model.cells.map((c) => code(c.id)).join(' | ')} |`);
    lines.push(`|${heads.map(() => '---').join('|')}|${model.cells.map(() => ':-:').join('|')}|`);
    for (const row of rows) lines.push(`| ${rowHead(row).join(' | ')} | ${model.cells.map((c) => pairText(row.cells[c.id] ?? null)).join(' | ')} |`);
    lines.push('');
  }
  return lines;
}

/** Every reason present, in words, and what to do: one line per distinct advice, with the subjects and cells it is for. */
function adviceSection(model: ReportModel): string[] {
  if (model.reasons.length === 0) return [];
  const lines = ['### What to do', ''];
  const reasons = [...model.reasons].sort((a, b) => compareReasons(a.code, b.code));
  for (const r of reasons) {
    // row -> cells, per advice text, for the pairs whose shown reason this is.
    const byAdvice = new Map<string, Map<ModelRow, string[]>>();
    for (const row of model.rows) {
      for (const c of model.cells) {
        const pair = row.cells[c.id];
        if (!pair || pair.reason !== r.code || !pair.advice) continue;
        const subjects = byAdvice.get(pair.advice) ?? new Map<ModelRow, string[]>();
        byAdvice.set(pair.advice, subjects);
        subjects.set(row, [...(subjects.get(row) ?? []), c.id]);
      }
    }
    lines.push(`**${code(r.code)}**: ${prose(r.description)} (${plural(r.count, 'check')}).`, '');
    for (const [advice, subjects] of byAdvice) {
      const named = [...subjects].slice(0, NAMED_LIMIT).map(([row, cells]) => `${code(row.subject)} on ${cells.length === model.cells.length ? 'every cell' : cells.map(code).join(', ')}`);
      const more = subjects.size > NAMED_LIMIT ? `, and ${subjects.size - NAMED_LIMIT} more` : '';
      lines.push(`- ${prose(advice)}  `, `  For ${named.join('; ')}${more}.`);
    }
    if (byAdvice.size === 0) lines.push('- Shown on cells whose worst reason is another; see the evidence in table.html.');
    lines.push('');
  }
  return lines;
}

/** The table.md text of a model. */
export function renderMarkdown(model: ReportModel): string {
  const lines: string[] = [summaryLine(model), ''];
  lines.push(...changesSection(model), ...cellsSection(model), ...gridSections(model), ...adviceSection(model));
  lines.push(`Marks: ${COUNT_ORDER.map((s) => `${mark(s)} ${s}`).join(', ')}, ${NOT_RUN} not run. Evidence per check: table.html, table.json, results.jsonl.`);
  return `${lines.join('\n')}\n`;
}
