/**
 * table.html in a real browser (headless Debian Chromium): the filters by arch,
 * kernel and reason hide the right columns and rows, a subject x cell opens its
 * evidence, and the page asks the network for nothing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../../core/reasons.js';
import { writeReports } from '../../reports/index.js';
import type { ReportModel } from '../../reports/model.js';
import { DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const CHROMIUM = '/usr/bin/chromium';
/** Is a <details> element open (its live property, not only the attribute)? */
const isOpen = (details: Locator) => details.evaluate((d) => (d as unknown as { open: boolean }).open);
const noChromium = !existsSync(CHROMIUM);

describe.skipIf(noChromium)(`table.html in headless Chromium (skipped when ${CHROMIUM} is missing)`, () => {
  const out = mkdtempSync(join(tmpdir(), 'bpfgate-html-'));
  const results = realisticResults();
  let model: ReportModel;
  let browser: Browser;
  let page: Page;
  const foreignRequests: string[] = [];
  let url: string;

  beforeAll(async () => {
    model = await writeReports(out, results, DEFAULT_FACTS, { env: {} });
    url = pathToFileURL(join(out, 'table.html')).href;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage();
    page.on('request', (req) => {
      if (!req.url().startsWith(url)) foreignRequests.push(req.url());
    });
    await page.goto(url);
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(out, { recursive: true, force: true });
  });

  const visibleCellHeads = () => page.locator('#matrix thead th[data-col]:visible').allTextContents();
  const visibleSubjects = () => page.locator('#matrix tbody tr:visible th').allTextContents();
  async function filter(values: { arch?: string; kernel?: string; reason?: string; status?: string }): Promise<void> {
    await page.selectOption('#f-arch', values.arch ?? '');
    await page.selectOption('#f-kernel', values.kernel ?? '');
    await page.selectOption('#f-reason', values.reason ?? '');
    await page.selectOption('#f-status', values.status ?? '');
  }
  /** Subjects with a check of this reason on a cell that passes the predicate, sorted as the table sorts them. */
  function subjectsWith(reason: Reason, cellOk: (cell: string) => boolean = () => true): string[] {
    return [...new Set(results.filter((r) => r.reason === reason && cellOk(r.cell)).map((r) => r.subject))].sort();
  }

  it('shows every subject and every cell before any filter, and loads nothing from elsewhere', async () => {
    expect(await visibleCellHeads()).toEqual(model.cells.map((c) => c.id));
    expect(await visibleSubjects()).toEqual(model.rows.map((r) => r.subject));
    expect(await page.locator('#shown').textContent()).toBe(`${model.rows.length} of ${model.rows.length} subjects, 11 of 11 cells`);
    expect(foreignRequests).toEqual([]);
  });

  it('hides the other columns when filtered by arch', async () => {
    await filter({ arch: 'arm64' });
    expect(await visibleCellHeads()).toEqual(['arm64-4k-6.1', 'arm64-4k-6.12', 'arm64-16k-6.12', 'arm64-4k-6.1+nobpflsm', 'arm64-4k-6.12+nobpflsm', 'arm64-16k-6.12+nobpflsm']);
    const row = page.locator('#matrix tbody tr', { has: page.locator('th', { hasText: /^deny-nsenter$/ }) });
    expect(await row.locator('td:visible').allTextContents()).toEqual(Array(6).fill('❌ symbol-missing'));
  });

  it('hides the other columns when filtered by kernel', async () => {
    await filter({ kernel: '6.1' });
    expect(await visibleCellHeads()).toEqual(['x86_64-6.1', 'arm64-4k-6.1', 'x86_64-6.1+nobpflsm', 'arm64-4k-6.1+nobpflsm']);
  });

  it('keeps only the rows with that reason when filtered by reason, within the visible cells', async () => {
    await filter({ reason: 'symbol-missing' });
    const x64Only = subjectsWith('symbol-missing');
    expect(x64Only).toContain('deny-nsenter');
    expect(await visibleSubjects()).toEqual(x64Only);

    await filter({ arch: 'x86_64', reason: 'symbol-missing' });
    expect(await visibleSubjects()).toEqual([]);

    await filter({ reason: 'lsm-inactive' });
    expect(await visibleSubjects()).toEqual(subjectsWith('lsm-inactive'));
    // Cells of a shown row that do not have the reason are dimmed, not hidden.
    const lsmRow = page.locator('#matrix tbody tr', { has: page.locator('th', { hasText: /^lsm-file-open$/ }) });
    expect(await lsmRow.locator('td.dim:visible').count()).toBeGreaterThan(0);
    expect(await lsmRow.locator('td:not(.dim):visible').allTextContents()).toEqual(Array(4).fill('❌ lsm-inactive'));

    await filter({ arch: 'arm64', kernel: '6.12', reason: 'ringbuf-pagesize' });
    expect(await visibleSubjects()).toEqual(subjectsWith('ringbuf-pagesize', (c) => c.startsWith('arm64-') && c.includes('-6.12')));
    expect(await visibleCellHeads()).toEqual(['arm64-4k-6.12', 'arm64-16k-6.12', 'arm64-4k-6.12+nobpflsm', 'arm64-16k-6.12+nobpflsm']);
  });

  it('opens the checks and evidence of a policy x cell when its cell is clicked', async () => {
    await filter({});
    const r = model.rows.findIndex((row) => row.subject === 'deny-nsenter');
    const c = model.cells.findIndex((cell) => cell.id === 'arm64-4k-6.12');
    const details = page.locator(`#ev-${r}-${c}`);
    expect(await isOpen(details)).toBe(false);

    await page.click(`#matrix tbody tr[data-row="${r}"] td[data-col="${c}"] a`);
    await expect.poll(() => isOpen(details)).toBe(true);
    expect(await details.isVisible()).toBe(true);
    expect(await details.locator('summary').textContent()).toBe('❌ deny-nsenter on arm64-4k-6.12: fail (symbol-missing)');
    const evidence = await details.locator('pre').first().textContent();
    expect(JSON.parse(evidence ?? '')).toEqual({ symbol: '__x64_sys_setns', arch: 'arm64', kallsyms: 'absent', suggestion: '__arm64_sys_setns' });
    expect(await details.locator('tbody tr').count()).toBe(model.rows[r]?.cells['arm64-4k-6.12']?.checks.length);
    expect(await page.locator('#evidence details[open]').count()).toBe(1);

    // Closed by the reader, then clicked again (the same anchor: no hashchange): it opens again.
    await details.locator('summary').click();
    expect(await isOpen(details)).toBe(false);
    await page.click(`#matrix tbody tr[data-row="${r}"] td[data-col="${c}"] a`);
    await expect.poll(() => isOpen(details)).toBe(true);
  });

  it('opens the evidence an anchor in the address names, for links shared by people', async () => {
    const r = model.rows.findIndex((row) => row.subject === 'kprobe-multi');
    const c = model.cells.findIndex((cell) => cell.id === 'arm64-16k-6.12+nobpflsm');
    const fresh = await browser.newPage();
    try {
      await fresh.goto(`${url}#ev-${r}-${c}`);
      const details = fresh.locator(`#ev-${r}-${c}`);
      expect(await isOpen(details)).toBe(true);
      expect(await details.locator('pre').textContent()).toContain('BPFGATE-RESULT kprobe-multi');
      expect(await details.locator('summary').textContent()).toContain('error (infra-guest-protocol)');
    } finally {
      await fresh.close();
    }
  });
});
