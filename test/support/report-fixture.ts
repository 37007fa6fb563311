/**
 * The report tests' inputs: a real run's output (test/fixtures/reports: a trimmed
 * results.jsonl and its run.json, see the README there), and a large run made from
 * it for the size limits: the same real checks and evidence, repeated over more
 * policies and cells, with hit counts that vary per cell as a real run's do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import type { CellFacts } from '../../core/facts.js';
import { parseResultLine } from '../../core/results-store.js';
import type { RunManifest } from '../../core/run-manifest.js';
import { PROJECT_ROOT } from './shared.js';

export const REPORT_FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'reports');
const RESULTS_FILE = join(REPORT_FIXTURES, 'default-matrix.results.jsonl');

/** The real run's checks, validated as `bpfgate table` reads them. */
export function fixtureResults(): CheckResult[] {
  return readFileSync(RESULTS_FILE, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseResultLine(l, RESULTS_FILE, i + 1));
}

export function fixtureManifest(): RunManifest {
  return JSON.parse(readFileSync(join(REPORT_FIXTURES, 'default-matrix.run.json'), 'utf8')) as RunManifest;
}

/** Numbers in evidence (hit counts, durations) moved by a step, so that cells do not share evidence verbatim. */
function vary(value: unknown, step: number): unknown {
  if (typeof value === 'number') return Number.isInteger(value) && value > 2 ? value + step : value;
  if (Array.isArray(value)) return value.map((v) => vary(v, step));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, vary(v, step)]));
  return value;
}

/**
 * `policies` policies and the real triggers and features on `cells` cells: the real
 * run's policy subjects cloned (`name-7`) with their real checks and evidence, its ten
 * cells cloned (`x86_64-6.1~2`) with their facts.
 */
export function largeRun(policies: number, cells: number): { results: CheckResult[]; facts: CellFacts[] } {
  const real = fixtureResults();
  const manifest = fixtureManifest();
  const cellIds = manifest.cells.map((c) => c.cell);
  const facts: CellFacts[] = Array.from({ length: cells }, (_, i) => {
    const base = manifest.cells[i % manifest.cells.length]!;
    const copy = Math.floor(i / manifest.cells.length);
    return { ...base, cell: copy ? `${base.cell}~${copy + 1}` : base.cell };
  });
  const policySubjects = [...new Set(real.filter((r) => r.suite === 'static' || r.check === 'hooks').map((r) => r.subject))];
  const results: CheckResult[] = [];
  facts.forEach((cell, i) => {
    const realCell = cellIds[i % cellIds.length]!;
    const mine = real.filter((r) => r.cell === realCell);
    for (const r of mine) {
      if (policySubjects.includes(r.subject)) continue;
      results.push({ ...r, cell: cell.cell, evidence: vary(r.evidence, i) as CheckResult['evidence'] });
    }
    for (let p = 0; p < policies; p++) {
      const subject = policySubjects[p % policySubjects.length]!;
      for (const r of mine.filter((x) => x.subject === subject)) {
        results.push({ ...r, cell: cell.cell, subject: `${subject}-${p}`, evidence: vary(r.evidence, i + p) as CheckResult['evidence'] });
      }
    }
  });
  return { results, facts };
}
