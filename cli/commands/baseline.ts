/**
 * `bpfgate baseline --from DIR`: write the failures of a finished run as a baseline
 * (YAML on stdout), so a gate can start from today's known failures and fail only
 * on changes. One entry per subject, check and reason; the cells where it fails are
 * one glob. Infrastructure errors are never baselined: they say nothing about policies.
 */
import { stringify } from 'yaml';
import type { CheckResult } from '../../core/check.js';
import { readResultsDir } from '../../core/results-store.js';
import { readRunManifest } from '../../core/run-manifest.js';

/** Glob-escape a literal (subjects can hold paths and @). */
export function globLiteral(text: string): string {
  return text.replace(/[\\*?[\]{}()!@+|]/g, (c) => `\\${c}`);
}

/** `cells`: every cell of the run (run.json), so a failure on all of them becomes `*`. */
export function baselineFrom(results: CheckResult[], cells: readonly string[] = [...new Set(results.map((r) => r.cell))]): Array<Record<string, string>> {
  const allCells = [...new Set(cells)].sort();
  const groups = new Map<string, { subject: string; check: string; reason: string; cells: Set<string> }>();
  for (const r of results) {
    if (r.status !== 'fail' || !r.reason) continue;
    const key = [r.subject, r.check, r.reason].join('\u0000');
    const g = groups.get(key) ?? { subject: r.subject, check: r.check, reason: r.reason, cells: new Set<string>() };
    g.cells.add(r.cell);
    groups.set(key, g);
  }
  return [...groups.values()]
    .sort((a, b) => a.subject.localeCompare(b.subject) || a.check.localeCompare(b.check))
    .map((g) => {
      const cells = [...g.cells].sort();
      const cell = cells.length === allCells.length ? '*' : cells.length === 1 ? globLiteral(cells[0]!) : `{${cells.map(globLiteral).join(',')}}`;
      return { cell, subject: globLiteral(g.subject), check: globLiteral(g.check), reason: g.reason };
    });
}

export async function baselineCommand(opts: { from: string; out?: NodeJS.WritableStream }): Promise<number> {
  const results = await readResultsDir(opts.from);
  const manifest = opts.from.endsWith('.jsonl') ? undefined : await readRunManifest(opts.from);
  const entries = baselineFrom(results, manifest?.cells.map((c) => c.cell));
  const header = `# bpfgate baseline: ${entries.length} known failures, written from ${opts.from}\n# bpfgate run --baseline THIS_FILE fails only on failures not listed here.\n`;
  (opts.out ?? process.stdout).write(header + (entries.length ? stringify(entries, { lineWidth: 0 }) : '[]\n'));
  return 0;
}
