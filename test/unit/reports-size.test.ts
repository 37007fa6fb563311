/**
 * Size limits are a contract: the page a project publishes stays well under 1 MB at
 * 100 policies x 20 cells, and the job summary fits GitHub's 1 MiB, cut with a note
 * when a run is larger. The run is the real fixture's checks and evidence repeated
 * over 100 policies and 20 cells (test/support/report-fixture.ts).
 */
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fitStepSummary, SUMMARY_LIMIT } from '../../reports/github.js';
import { renderHtml } from '../../reports/html.js';
import { renderMarkdown } from '../../reports/markdown.js';
import { buildModel } from '../../reports/model.js';
import { largeRun } from '../support/report-fixture.js';

const { results, facts } = largeRun(100, 20);
const model = buildModel(results, facts);
const html = renderHtml(model);
const markdown = renderMarkdown(model);

describe('report sizes at 100 policies x 20 cells', () => {
  it('is the size it claims: 100 policies, 20 cells, every check with its evidence', () => {
    expect(model.cells).toHaveLength(20);
    expect(model.rows.filter((r) => r.section === 'policies')).toHaveLength(100);
    expect(model.summary.checks).toBe(results.length);
    expect(results.length).toBeGreaterThan(100 * 20 * 3);
  });

  it('keeps table.html well under 1 MB, with every check and its evidence in the page', () => {
    const bytes = Buffer.byteLength(html);
    expect(bytes).toBeLessThan(600 * 1024);
    // The evidence is in the page, packed: every check of every pair, once.
    const packed = /<script type="application\/gzip" id="bpfgate-data">([^<]+)<\/script>/.exec(html)?.[1] ?? '';
    const data = JSON.parse(gunzipSync(Buffer.from(packed, 'base64')).toString('utf8')) as { p: Record<string, [number, unknown[]]> };
    const checks = Object.values(data.p).reduce((n, [, cs]) => n + cs.length, 0);
    expect(checks).toBe(results.length);
    // What the old page spent on repeated evidence markup, this one does not: no <pre> per check.
    expect(html.match(/<pre/g) ?? []).toHaveLength(0);
  });

  it('keeps table.md under the job summary limit at this size', () => {
    expect(Buffer.byteLength(markdown)).toBeLessThan(SUMMARY_LIMIT);
    expect(fitStepSummary(markdown, SUMMARY_LIMIT)).toBe(markdown);
  });

  it('cuts a job summary that would not fit at a line, with a note, under the limit', () => {
    const huge = renderMarkdown(buildModel(largeRun(100, 20).results.map((r, i) => ({ ...r, subject: `${r.subject}-${'x'.repeat(400)}-${i % 7}` })), facts));
    const budget = 200 * 1024;
    expect(Buffer.byteLength(huge)).toBeGreaterThan(budget);
    const cut = fitStepSummary(huge, budget);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(budget);
    expect(cut).toMatch(/\*\*The report is cut here\*\* \(\d+ of \d+ lines\) to stay under GitHub's 1 MiB job summary limit/);
    const kept = cut.slice(0, cut.indexOf('\n\n**The report is cut here**'));
    expect(huge.startsWith(`${kept}\n`)).toBe(true);
  });
});
