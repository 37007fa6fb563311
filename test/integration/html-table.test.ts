/**
 * table.html in a real browser (headless Debian Chromium), on a real run's output
 * (test/fixtures/reports): what a reader sees first (what changed, the cells), then
 * filters by status, section and arch, a search for a policy, and a cell opened to
 * its reason, what to do and its hook-level evidence; a shared link opens a cell too,
 * and the page asks the network for nothing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateGate, parseBaseline } from '../../core/baseline.js';
import type { CheckResult } from '../../core/check.js';
import { writeRunManifest } from '../../core/run-manifest.js';
import { writeReports } from '../../reports/index.js';
import type { ReportModel } from '../../reports/model.js';
import { fixtureManifest, fixtureResults } from '../support/report-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
/** Is a <details> element open (its live property, not only the attribute)? */
const isOpen = (details: Locator) => details.evaluate((d) => (d as unknown as { open: boolean }).open);
const noChromium = !existsSync(CHROMIUM);

describe.skipIf(noChromium)(`table.html in headless Chromium (skipped when ${CHROMIUM} is missing)`, () => {
  const out = mkdtempSync(join(tmpdir(), 'bpfgate-html-'));
  const results = fixtureResults();
  const manifest = fixtureManifest();
  const nsenterArm = results.find((r) => r.subject === 'deny-nsenter' && r.cell === 'arm64-4k-6.12' && r.check === 'hooks')!;
  // Last week's run, as the reader compares with it: deny-nsenter still passed on arm64-4k-6.12.
  const previous: CheckResult[] = results.map((r) => (r === nsenterArm ? { ...r, status: 'pass', reason: null } : r));
  // A baseline that knows the arm64 symbol failures and nothing else.
  const gate = evaluateGate(results, parseBaseline('- {cell: "arm64-*", subject: "*", reason: symbol-missing}\n', 'baselines/team.yaml'));
  let model: ReportModel;
  let browser: Browser;
  let page: Page;
  const foreignRequests: string[] = [];
  let url: string;

  beforeAll(async () => {
    await writeRunManifest(out, manifest);
    model = await writeReports(out, results, manifest.cells, { env: {}, gate, compare: { against: 'runs/last-week', results: previous } });
    url = pathToFileURL(join(out, 'table.html')).href;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('request', (req) => {
      if (!req.url().startsWith(url)) foreignRequests.push(req.url());
    });
    await page.goto(url);
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(out, { recursive: true, force: true });
  });

  const rowIndex = (subject: string, section = 'policies') => model.rows.findIndex((r) => r.subject === subject && r.section === section);
  const colIndex = (cell: string) => model.cells.findIndex((c) => c.id === cell);
  /** The names of the rows shown in a section. */
  const shownRows = (section: string) => page.locator(`#s-${section} tbody tr[data-row]:visible th .nm, #s-${section} tbody tr[data-row]:visible th .tq`).allTextContents();
  const shownCells = (section: string) => page.locator(`#s-${section} thead th[data-col]:visible`).allTextContents();
  async function filter(values: { q?: string; status?: string; section?: string; arch?: string; kernel?: string; cell?: string; reason?: string }): Promise<void> {
    await page.fill('#f-q', values.q ?? '');
    for (const f of ['status', 'section', 'arch', 'kernel', 'cell', 'reason'] as const) await page.selectOption(`#f-${f}`, values[f] ?? '');
  }
  const rowsWith = (section: string, ok: (status: string) => boolean) =>
    model.rows.filter((r) => r.section === section && Object.values(r.cells).some((p) => p && ok(p.status))).map((r) => r.label.name);

  it('opens with what changed, then a row per cell with its counts, and loads nothing from elsewhere', async () => {
    const changes = page.locator('#changes');
    expect(await changes.isVisible()).toBe(true);
    expect(await changes.locator('p').first().textContent()).toBe(
      `Against the baseline: ${gate.unexpected.length} failures it does not list (they fail the gate); ${gate.expected.length} it expects.`,
    );
    expect(await changes.locator('tr.ch.worse td').allTextContents()).toEqual(['worse', 'deny-nsenter', 'arm64-4k-6.12', 'hooks', 'ok', 'FAIL symbol-missing']);
    const box = async (sel: string) => (await page.locator(sel).boundingBox())!.y;
    expect(await box('#changes')).toBeLessThan(await box('#cells'));
    expect(await box('#cells')).toBeLessThan(await box('#s-features'));
    const cellRows = page.locator('#cells tbody tr');
    expect(await cellRows.count()).toBe(10);
    const c16k = model.summary.perCell['arm64-16k-6.12']!;
    expect(await cellRows.nth(colIndex('arm64-16k-6.12')).locator('td').allTextContents()).toEqual(['6.12.118+deb13-arm64-16k', 'arm64', '16K', 'on', '', String(c16k.pass), String(c16k.fail), String(c16k.error), String(c16k.skip)]);
    expect(await cellRows.nth(colIndex('arm64-16k-6.12')).locator('.bar i').count()).toBeGreaterThan(1);
    expect(await page.locator('#shown').textContent()).toBe(`${model.rows.length} of ${model.rows.length} rows, 10 of 10 cells`);
    expect(foreignRequests).toEqual([]);
  });

  it('shows marks as plain words the page itself draws, with the reason code under each mark that is not ok', async () => {
    const texts = await page.locator('table.m tbody tr[data-row] td').allInnerTexts();
    for (const t of texts) expect(t).toMatch(/^(ok|-|(FAIL|ERROR|skip)\n[a-z0-9-]+)$/);
    const fail = page.locator(`tr[data-row="${rowIndex('deny-nsenter')}"] td`).nth(colIndex('arm64-4k-6.12'));
    expect(await fail.innerText()).toBe('FAIL\nsymbol-missing');
    // Pointed at, the reason in words.
    expect(await fail.getAttribute('title')).toBe(`fail: ${model.reasons.find((r) => r.code === 'symbol-missing')!.description}`);
    // Filled with a colour, drawn by CSS: no font involved.
    expect(await fail.evaluate((td) => getComputedStyle(td).backgroundColor)).toBe('rgb(255, 235, 233)');
  });

  it('filters by status: only the rows with a failing cell stay, their other cells dimmed', async () => {
    await filter({ status: 'f' });
    expect(await shownRows('policies')).toEqual(rowsWith('policies', (s) => s === 'fail'));
    expect(await shownRows('features')).toEqual(rowsWith('features', (s) => s === 'fail'));
    expect(await shownRows('policies')).not.toContain('bpf');
    const nsenter = page.locator(`tr[data-row="${rowIndex('deny-nsenter')}"]`);
    expect(await nsenter.locator('td.dim').count()).toBe(4);
    expect(await nsenter.locator('td:not(.dim)').allInnerTexts()).toEqual(Array(6).fill('FAIL\nsymbol-missing'));
    await filter({ status: 's' });
    expect(await shownRows('policies')).toEqual(rowsWith('policies', (s) => s === 'skip'));
    expect(await shownRows('policies')).toContain('all-ksys-for-kill');
  });

  it('filters by section and by arch, hiding the other sections and columns', async () => {
    await filter({ section: 'triggers' });
    expect(await page.locator('#s-policies').isVisible()).toBe(false);
    expect(await page.locator('#s-features').isVisible()).toBe(false);
    expect(await shownRows('triggers')).toHaveLength(6);
    await filter({ arch: 'arm64' });
    expect(await shownCells('features')).toEqual(model.cells.filter((c) => c.arch === 'arm64').map((c) => c.id));
    expect(await page.locator('#shown').textContent()).toBe(`${model.rows.length} of ${model.rows.length} rows, 6 of 10 cells`);
  });

  it('finds a policy by name or by file, in any section', async () => {
    await filter({ q: 'nsenter' });
    expect(await shownRows('policies')).toEqual(['deny-nsenter']);
    expect(await page.locator('#s-features .scroll').isVisible()).toBe(false);
    expect(await page.locator('#s-features p.none').isVisible()).toBe(true);
    expect(await page.locator('#shown').textContent()).toBe(`1 of ${model.rows.length} rows, 10 of 10 cells`);
    await filter({ q: 'dev_queue_xmit' });
    expect(await shownRows('policies')).toEqual(['syscalls']);
    await filter({ q: 'T1059' });
    expect(await shownRows('triggers')).toEqual(['T1059.004']);
  });

  it('opens a cell with its reason in words, what to do, and the hook that failed, one click away', async () => {
    await filter({ q: 'nsenter' });
    const r = rowIndex('deny-nsenter');
    const c = colIndex('arm64-4k-6.12');
    await page.click(`tr[data-row="${r}"] td:nth-child(${c + 2}) a`);
    const detail = page.locator(`#ev-${r}-${c}`);
    await expect.poll(() => detail.isVisible()).toBe(true);
    expect(await detail.locator('h3').innerText()).toBe('deny-nsenter on arm64-4k-6.12: FAIL symbol-missing');
    expect(await detail.locator('p.words').textContent()).toBe(model.reasons.find((x) => x.code === 'symbol-missing')!.description);
    expect(await detail.locator('p.todo').innerText()).toBe(
      'What to do: The policy hard-codes the arch-specific symbol __x64_sys_setns: write the syscall as sys_setns with syscall: true, and the agent picks the symbol of each arch.',
    );
    // Every check of the pair, the deciding one open, with its hooks as a table.
    const checks = detail.locator('details');
    expect(await checks.locator('summary code').allTextContents()).toEqual(model.rows[r]!.cells['arm64-4k-6.12']!.checks.map((k) => k.check));
    const hooks = checks.filter({ has: page.locator('summary code', { hasText: /^hooks$/ }) });
    expect(await isOpen(hooks)).toBe(true);
    expect(await hooks.locator('table.hooks tbody tr td').allTextContents()).toEqual(['kprobe:__x64_sys_setns', String(nsenterArm.source!.line), 'kprobe:__x64_sys_setns', '', 'Invalid argument']);
    const schema = checks.filter({ has: page.locator('summary code', { hasText: /^schema$/ }) });
    expect(await isOpen(schema)).toBe(false);
    await schema.locator('summary').click();
    expect(await isOpen(schema)).toBe(true);
    expect(await schema.locator('dl.ev dt').allTextContents()).toEqual(['kind']);
    // Clicked again, the cell closes; a third time, it opens again.
    await page.click(`tr[data-row="${r}"] td:nth-child(${c + 2}) a`);
    expect(await page.locator('tr.detail').count()).toBe(0);
    await page.click(`tr[data-row="${r}"] td:nth-child(${c + 2}) a`);
    await expect.poll(() => detail.isVisible()).toBe(true);
  });

  it('opens the cell a shared link names', async () => {
    const r = rowIndex('lsm-file-open');
    const c = colIndex('x86_64-6.12+nobpflsm');
    const fresh = await browser.newPage();
    try {
      await fresh.goto(`${url}#ev-${r}-${c}`);
      const detail = fresh.locator(`#ev-${r}-${c}`);
      await expect.poll(() => detail.isVisible()).toBe(true);
      expect(await detail.locator('h3').innerText()).toBe('lsm-file-open on x86_64-6.12+nobpflsm: FAIL lsm-inactive');
      expect(await detail.locator('p.todo').innerText()).toContain('lsm=lockdown,capability,landlock,yama,apparmor,ima,evm,bpf');
    } finally {
      await fresh.close();
    }
  });
});
