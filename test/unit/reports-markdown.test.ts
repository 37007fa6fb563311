import { describe, expect, it } from 'vitest';
import { evaluateGate, parseBaseline } from '../../core/baseline.js';
import type { CheckResult } from '../../core/check.js';
import { REASONS } from '../../core/reasons.js';
import { renderMarkdown } from '../../reports/markdown.js';
import { buildModel } from '../../reports/model.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { fixtureManifest, fixtureResults } from '../support/report-fixture.js';

const RESULTS = fixtureResults();
const MANIFEST = fixtureManifest();
const CELLS = MANIFEST.cells;
const CELL_IDS = CELLS.map((c) => c.cell);
const POLICY_FILES = MANIFEST.inputs.policies.files.map((f) => f.path);
const TRIGGERS = (await loadTriggerCatalogue()).map((t) => ({ id: t.id, technique: t.technique, name: t.name, tactic: t.tactic, hooks: t.hooks }));
const model = buildModel(RESULTS, CELLS, { policyFiles: POLICY_FILES, triggers: TRIGGERS, link: (file) => `https://github.com/o/r/blob/abc/${file.split('/').slice(-1)[0]}` });
const md = renderMarkdown(model);
const lines = md.split('\n');

/** The cells of a Markdown table row, honouring escaped pipes. */
function cellsOf(line: string): string[] {
  return line
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/** The lines of one `### ` section. */
function sectionLines(title: RegExp): string[] {
  const start = lines.findIndex((l) => title.test(l));
  expect(start, String(title)).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('### '));
  return lines.slice(start, end < 0 ? undefined : end);
}

function rowOf(section: RegExp, first: string): string[] {
  const line = sectionLines(section).find((l) => l.startsWith(`| ${first} |`));
  expect(line, `a row for ${first}`).toBeDefined();
  return cellsOf(line ?? '');
}

describe('table.md', () => {
  it('opens with a summary line that counts every section and every check by status', () => {
    const n = (s: string) => RESULTS.filter((r) => r.status === s).length;
    expect(lines[0]).toBe(`**bpfgate**: 11 kernel features, 13 policies, 6 triggers on 10 cells; ${RESULTS.length} checks: ${n('pass')} pass, ${n('fail')} fail, ${n('error')} error, ${n('skip')} skip`);
  });

  it('has a row per cell with its facts, counts and a bar of plain characters', () => {
    const row = rowOf(/^### Cells$/, '`arm64-16k-6.12+nobpflsm`');
    const counts = model.summary.perCell['arm64-16k-6.12+nobpflsm']!;
    const total = counts.pass + counts.fail + counts.error + counts.skip;
    const filled = Math.round((counts.pass / total) * 10);
    expect(row).toEqual([
      '`arm64-16k-6.12+nobpflsm`',
      '6.12.118+deb13-arm64-16k',
      'arm64',
      '16K',
      '**off**',
      `\`[${'#'.repeat(filled)}${'.'.repeat(10 - filled)}]\` ${Math.round((100 * counts.pass) / total)}%`,
      String(counts.pass),
      String(counts.fail),
      String(counts.error),
      String(counts.skip),
    ]);
  });

  it('has a table per section, features first, with a word per subject x cell and the reason when not green', () => {
    const order = ['### Cells', '### Kernel features (11)', '### Policies (13)', '### Triggers (6)', '### What to do'].map((h) => lines.indexOf(h));
    expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!))).toBe(true);
    const features = sectionLines(/^### Kernel features/);
    expect(cellsOf(features.find((l) => l.startsWith('| feature |'))!)).toEqual(['feature', ...CELL_IDS.map((id) => `\`${id}\``)]);
    const ringbuf = rowOf(/^### Kernel features/, '`ringbuf-4096`');
    expect(ringbuf.slice(1)).toEqual(CELL_IDS.map((id) => (id.startsWith('arm64-16k-') ? '**FAIL** ringbuf-pagesize' : 'ok')));
    const nsenter = rowOf(/^### Policies/, '`deny-nsenter`');
    const line = model.rows.find((r) => r.subject === 'deny-nsenter')!.source!.line;
    expect(nsenter[1]).toBe(`[\`tetragon-extra/docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/02_nsenter.yaml:${line}\`](<https://github.com/o/r/blob/abc/02_nsenter.yaml#L${line}>)`);
    expect(nsenter.slice(2)).toEqual(CELL_IDS.map((id) => (id.startsWith('arm64-') ? '**FAIL** symbol-missing' : 'ok')));
    expect(rowOf(/^### Triggers/, '`T1059.004`')[1]).toBe('Command and Scripting Interpreter: Unix Shell (`t1059-004-unix-shell`)');
    // Plain words only: nothing in the tables needs an emoji font.
    expect(md).toMatch(/^[\x20-\x7e\n]*$/);
  });

  it('says what to do for every reason present, sharpened per subject where the evidence says more', () => {
    const todo = sectionLines(/^### What to do$/);
    const codes = todo.filter((l) => l.startsWith('**`')).map((l) => /^\*\*`([^`]+)`\*\*/.exec(l)?.[1]);
    expect(new Set(codes)).toEqual(new Set(model.reasons.map((r) => r.code)));
    expect(todo).toContain(`**\`symbol-missing\`**: ${REASONS['symbol-missing'].replace(/\|/g, '\\|')} (${RESULTS.filter((r) => r.reason === 'symbol-missing').length} checks).`);
    const x64 = todo.findIndex((l) => l.includes('hard-codes the arch-specific symbol `__x64_sys_setns`'));
    expect(x64).toBeGreaterThan(0);
    expect(todo[x64 + 1]).toBe(`  For \`deny-nsenter\` on ${CELL_IDS.filter((id) => id.startsWith('arm64-')).map((id) => `\`${id}\``).join(', ')}.`);
    expect(todo.some((l) => l.includes('`lsm=lockdown,capability,landlock,yama,apparmor,ima,evm,bpf`'))).toBe(true);
    expect(todo.some((l) => l.startsWith('- arm64 before 6.4 has no direct calls'))).toBe(true);
  });

  it('opens with what changed against the baseline and a previous run', () => {
    const gate = evaluateGate(RESULTS, parseBaseline('- {cell: "*", subject: "*", reason: symbol-missing}\n- {cell: "*", subject: no-such-policy, reason: load-error}\n', 'b.yaml'));
    const nsenter = RESULTS.find((r) => r.subject === 'deny-nsenter' && r.cell === 'arm64-4k-6.12' && r.check === 'hooks')!;
    const previous = RESULTS.map((r) => (r === nsenter ? { ...r, status: 'pass' as const, reason: null } : r));
    const text = renderMarkdown(buildModel(RESULTS, CELLS, { gate, previous: { against: 'last-week', results: previous } })).split('\n');
    expect(text.indexOf('### What changed')).toBe(2);
    expect(text).toContain(`Against the baseline: **${gate.unexpected.length} failures it does not list**; ${gate.expected.length} it expects.`);
    expect(text).toContain('Against `last-week`: 1 worse, 0 changed reason, 0 better, 0 new, 0 gone.');
    expect(text).toContain('| worse | `deny-nsenter` | `arm64-4k-6.12` | `hooks` | ok | **FAIL** symbol-missing |');
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
    const policies = text.split('\n').slice(text.split('\n').indexOf('### Policies (1)'));
    const [head, , row] = policies.filter((l) => l.startsWith('|'));
    expect(cellsOf(row ?? '')).toHaveLength(cellsOf(head ?? '').length);
    // Inside a code span, GitHub shows the text literally: no image, no extra row.
    expect(row).toBe('| ``evil \\| `x` <img src=x onerror=alert(1)> \\| injected \\|`` |  | **FAIL** load-error |');
  });
});
