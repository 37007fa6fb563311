import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ResultStore } from '../../core/results-store.js';
import { readPreviousRun, renderTableFromDir, sourceLinker, writeReports } from '../../reports/index.js';
import { writeRunManifest } from '../../core/run-manifest.js';
import type { ReportModel } from '../../reports/model.js';
import { DEFAULT_CELL_IDS, DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';
import { PROJECT_ROOT } from '../support/shared.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-json-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const RESULTS = realisticResults();
const CELLS = DEFAULT_FACTS;

function runDir(name: string): string {
  const dir = join(root, name);
  const store = ResultStore.open(dir);
  for (const r of RESULTS) store.append(r);
  store.close();
  return dir;
}

describe('table.json and the report files', () => {
  it('writes the five report files and nothing half-written', async () => {
    const dir = runDir('files');
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    expect(readdirSync(dir).sort()).toEqual(['attack-layer.json', 'junit.xml', 'results.jsonl', 'table.html', 'table.json', 'table.md']);
  });

  it('holds the cells with their facts, and every cell id in every row', async () => {
    const dir = runDir('shape');
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    const model = JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')) as ReportModel;
    expect(model.schemaVersion).toBe(1);
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static']);
    expect(model.cells.find((c) => c.id === 'arm64-4k-6.1')).toMatchObject({
      arch: 'arm64',
      pages: 4,
      kernel: '6.1',
      release: '6.1.0-57-arm64',
      bootArgs: [],
      lsm: ['lockdown', 'capability', 'landlock', 'yama', 'apparmor', 'tomoyo', 'bpf'],
      platform: 'qemu',
    });
    for (const row of model.rows) expect(Object.keys(row.cells)).toEqual(model.cells.map((c) => c.id));
    const pair = model.rows.find((r) => r.subject === 'ringbuf')?.cells['arm64-16k-6.12'];
    expect(pair).toMatchObject({ status: 'fail', reason: 'ringbuf-pagesize' });
    expect(pair?.checks[0]?.evidence).toEqual({ entries: 4096, pageSize: 16384, error: 'map create failed: Invalid argument' });
    expect(model.summary.checks).toBe(RESULTS.length);
  });

  it('renders a table from a results directory with the cell facts of its run.json', async () => {
    const dir = runDir('from');
    const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'results', 'default-matrix.run.json'), 'utf8'));
    await writeRunManifest(dir, manifest);
    await writeReports(dir, RESULTS, CELLS, { env: {} });
    const fromDir = JSON.parse(await renderTableFromDir(dir, 'json')) as ReportModel;
    expect(fromDir).toEqual(JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')));
    expect(await renderTableFromDir(dir, 'md', { env: {} })).toBe(readFileSync(join(dir, 'table.md'), 'utf8'));
    expect(await renderTableFromDir(dir, 'attack', { env: {} })).toBe(readFileSync(join(dir, 'attack-layer.json'), 'utf8'));
  });

  it('compares with a previous output directory, and names one that has no results', async () => {
    const dir = runDir('now');
    const before = join(root, 'before');
    const store = ResultStore.open(before);
    for (const r of RESULTS) store.append(r.subject === 'deny-nsenter' && r.status === 'fail' ? { ...r, status: 'pass', reason: null } : r);
    store.close();
    const model = JSON.parse(await renderTableFromDir(dir, 'json', { compare: await readPreviousRun(before), env: {} })) as ReportModel;
    const worse = RESULTS.filter((r) => r.subject === 'deny-nsenter' && r.status === 'fail').length;
    expect(model.comparison).toMatchObject({ against: before, counts: { worse, better: 0, changed: 0, new: 0, gone: 0 } });
    await expect(readPreviousRun(join(root, 'no-such-run'))).rejects.toThrow(/no-such-run.*no results here/);
  });

  it('renders a table from results alone (no run.json), naming cells by id and guessing nothing', async () => {
    const dir = runDir('bare');
    expect(existsSync(join(dir, 'run.json'))).toBe(false);
    const model = JSON.parse(await renderTableFromDir(dir, 'json')) as ReportModel;
    expect(model.cells.find((c) => c.id === 'arm64-16k-6.12')).toMatchObject({ arch: null, pages: null, kernel: null, kernelSource: null });
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(await renderTableFromDir(dir, 'html')).toMatch(/^<!doctype html>/);
  });

  it('links a source file to its commit on GitHub in Actions, and to the local file elsewhere', () => {
    const file = join(PROJECT_ROOT, 'test', 'fixtures', 'reports', 'README.md');
    const gh = { GITHUB_ACTIONS: 'true', GITHUB_SERVER_URL: 'https://git.example', GITHUB_REPOSITORY: 'org/policies', GITHUB_SHA: 'c0ffee', GITHUB_WORKSPACE: PROJECT_ROOT };
    expect(sourceLinker(gh, root)(file)).toBe('https://git.example/org/policies/blob/c0ffee/test/fixtures/reports/README.md');
    expect(sourceLinker(gh, root)('/etc/hostname')).toBeNull();
    expect(sourceLinker({}, join(PROJECT_ROOT, 'test'))(file)).toBe('./fixtures/reports/README.md');
    expect(sourceLinker({}, PROJECT_ROOT)(join(PROJECT_ROOT, 'no such file.yaml'))).toBeNull();
    // Segments are URL-encoded; a name never reads as a scheme.
    const odd = join(root, 'javascript:alert(1) #x.yaml');
    writeFileSync(odd, '');
    expect(sourceLinker({}, root)(odd)).toBe('./javascript%3Aalert(1)%20%23x.yaml');
  });

  it('refuses a run.json that is not what bpfgate writes, naming the file and field', async () => {
    const dir = runDir('broken');
    writeFileSync(join(dir, 'run.json'), '{"schemaVersion": 1, "cells": "no"}\n');
    await expect(renderTableFromDir(dir, 'md')).rejects.toThrow(/run\.json:1:\d+: .*(cells|required)/);
  });
});
