import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ResultStore } from '../../core/results-store.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { renderTableFromDir, writeReports } from '../../reports/index.js';
import { readTableCells } from '../../reports/json.js';
import type { ReportModel } from '../../reports/model.js';
import { DEFAULT_CELL_IDS, realisticResults } from '../support/realistic-results.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-json-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const RESULTS = realisticResults();
const CELLS = (await loadDefaultMatrix()).cells;

function runDir(name: string): string {
  const dir = join(root, name);
  const store = ResultStore.open(dir);
  for (const r of RESULTS) store.append(r);
  store.close();
  return dir;
}

describe('table.json and the report files', () => {
  it('writes the four report files and nothing half-written', async () => {
    const dir = runDir('files');
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    expect(readdirSync(dir).sort()).toEqual(['junit.xml', 'results.jsonl', 'table.html', 'table.json', 'table.md']);
  });

  it('holds the cells with arch, pages, kernel and variants, and every cell id in every row', async () => {
    const dir = runDir('shape');
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    const model = JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')) as ReportModel;
    expect(model.schemaVersion).toBe(1);
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static']);
    expect(model.cells.find((c) => c.id === 'arm64-16k-6.12+nobpflsm')).toEqual({
      id: 'arm64-16k-6.12+nobpflsm',
      arch: 'arm64',
      pages: 16,
      kernel: '6.12',
      kernelSource: 'trixie linux-image-arm64-16k',
      variants: ['nobpflsm'],
      bootArgs: ['lsm=lockdown,capability,landlock,yama,apparmor'],
      platform: 'qemu',
    });
    for (const row of model.rows) expect(Object.keys(row.cells)).toEqual(model.cells.map((c) => c.id));
    const pair = model.rows.find((r) => r.subject === 'ringbuf')?.cells['arm64-16k-6.12'];
    expect(pair).toMatchObject({ status: 'fail', reason: 'ringbuf-pagesize' });
    expect(pair?.checks[0]?.evidence).toEqual({ entries: 4096, pageSize: 16384, error: 'map create failed: Invalid argument' });
    expect(model.summary.checks).toBe(RESULTS.length);
  });

  it('renders a table from a results directory, keeping the matrix facts of its table.json', async () => {
    const dir = runDir('from');
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    expect(await readTableCells(dir)).toHaveLength(11);
    const fromDir = JSON.parse(await renderTableFromDir(dir, 'json')) as ReportModel;
    expect(fromDir).toEqual(JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')));
    expect(await renderTableFromDir(dir, 'md')).toBe(readFileSync(join(dir, 'table.md'), 'utf8'));
  });

  it('renders a table from an interrupted run that never wrote table.json, describing cells by id', async () => {
    const dir = runDir('interrupted');
    expect(existsSync(join(dir, 'table.json'))).toBe(false);
    const model = JSON.parse(await renderTableFromDir(dir, 'json')) as ReportModel;
    expect(model.cells.find((c) => c.id === 'arm64-16k-6.12')).toMatchObject({ arch: 'arm64', pages: 16, kernel: '6.12', kernelSource: null });
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(await renderTableFromDir(dir, 'html')).toMatch(/^<!doctype html>/);
  });
});
