import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { REASONS } from '../../core/reasons.js';
import { renderMarkdown } from '../../reports/markdown.js';
import { buildModel } from '../../reports/model.js';
import { DEFAULT_CELL_IDS, DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const RESULTS = realisticResults();
const CELLS = DEFAULT_FACTS;
const md = renderMarkdown(buildModel(RESULTS, CELLS));
const lines = md.split('\n');

/** The cells of a Markdown table row, honouring escaped pipes. */
function cellsOf(line: string): string[] {
  return line
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

function rowOf(subject: string): string[] {
  const line = lines.find((l) => l.startsWith(`| \`${subject}\` |`));
  expect(line, `a row for ${subject}`).toBeDefined();
  return cellsOf(line ?? '');
}

describe('table.md', () => {
  it('opens with a summary line that counts every check by status', () => {
    const n = (s: string) => RESULTS.filter((r) => r.status === s).length;
    expect(lines[0]).toBe(
      `**bpfgate**: ${RESULTS.length} checks of ${new Set(RESULTS.map((r) => r.subject)).size} subjects on 11 cells: ` +
        `✅ ${n('pass')} pass · ❌ ${n('fail')} fail · ⚠️ ${n('error')} error · ⏭ ${n('skip')} skip`,
    );
  });

  it('has a column per cell and a symbol per subject x cell, with the reason when not green', () => {
    const header = cellsOf(lines.find((l) => l.startsWith('| subject |')) ?? '');
    expect(header).toEqual(['subject', ...[...DEFAULT_CELL_IDS, 'static'].map((id) => `\`${id}\``)]);
    expect(rowOf('deny-nsenter')).toEqual([
      '`deny-nsenter`',
      '✅',
      '✅',
      '❌ symbol-missing',
      '❌ symbol-missing',
      '❌ symbol-missing',
      '✅',
      '✅',
      '❌ symbol-missing',
      '❌ symbol-missing',
      '❌ symbol-missing',
      '✅',
    ]);
    const lsm = rowOf('lsm-file-open');
    expect(lsm[3]).toBe('❌ trampoline-unsupported');
    expect(lsm[6]).toBe('❌ lsm-inactive');
    expect(rowOf('uprobe')[1]).toBe('⏭ untested');
    expect(rowOf('kprobe-multi')[10]).toBe('⚠️ infra-guest-protocol');
    expect(rowOf('kprobe-multi')[11]).toBe('—');
  });

  it('explains every reason present, and only those', () => {
    const start = lines.indexOf('| reason | meaning | checks |');
    expect(start).toBeGreaterThan(0);
    const legend = lines.slice(start + 2).filter((l) => l.startsWith('|'));
    const codes = legend.map((l) => cellsOf(l)[0]?.replace(/`/g, ''));
    expect(codes).toEqual([...new Set(RESULTS.flatMap((r) => (r.reason ? [r.reason] : [])))].sort());
    expect(legend).toContain(`| \`symbol-missing\` | ${REASONS['symbol-missing']} | ${RESULTS.filter((r) => r.reason === 'symbol-missing').length} |`);
  });

  it('keeps a hostile subject inside its table cell and out of the HTML', () => {
    const hostile: CheckResult = {
      cell: 'x86_64-6.1',
      lane: 'kernel',
      suite: 'policies',
      subject: 'evil | `x` <img src=x onerror=alert(1)>\n| injected |',
      check: 'hook:kprobe:x',
      status: 'fail',
      reason: 'load-error',
      evidence: {},
      durationMs: 1,
    };
    const text = renderMarkdown(buildModel([hostile], CELLS.slice(0, 1)));
    const tableLines = text.split('\n').filter((l) => l.startsWith('|'));
    const [head, , row] = tableLines;
    expect(cellsOf(row ?? '')).toHaveLength(cellsOf(head ?? '').length);
    // Inside a code span, GitHub shows the text literally: no image, no extra row.
    expect(row).toBe('| ``evil \\| `x` <img src=x onerror=alert(1)> \\| injected \\|`` | ❌ load-error |');
  });
});
