/**
 * Reports: one read-only model, several renderers, tied together by one map from
 * output file to renderer (as vitest ties reporter names to classes). File reports are
 * written once, at the end of a run, each atomically (a temp file renamed), so a reader
 * never sees half a table. GitHub output is added when GITHUB_ACTIONS=true.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GateResult } from '../core/baseline.js';
import { checkKey, type CheckResult } from '../core/check.js';
import type { CellFacts } from '../core/facts.js';
import { readResultsDir } from '../core/results-store.js';
import { readRunManifest } from '../core/run-manifest.js';
import { writeGithub } from './github.js';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';
import { buildModel, type ReportModel } from './model.js';

export type TableFormat = 'md' | 'html' | 'json';

/** Output file -> renderer. */
export const FILE_REPORTS = {
  'junit.xml': renderJunit,
  'table.md': renderMarkdown,
  'table.html': renderHtml,
  'table.json': renderJson,
} as const satisfies Record<string, (model: ReportModel) => string>;

const TABLE_RENDERERS: Record<TableFormat, (model: ReportModel) => string> = { md: renderMarkdown, html: renderHtml, json: renderJson };

export interface WriteReportsOptions {
  /** The gate's verdict: failures the baseline expects are annotated as warnings. */
  gate?: GateResult;
  env?: NodeJS.ProcessEnv;
  /** Where GitHub workflow commands go (default: stdout). */
  write?: (line: string) => void;
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Write junit.xml, table.md, table.html and table.json to `outDir`; returns the model they show. */
export async function writeReports(
  outDir: string,
  results: readonly CheckResult[],
  cells: readonly CellFacts[],
  opts: WriteReportsOptions = {},
): Promise<ReportModel> {
  const model = buildModel(results, cells);
  await mkdir(outDir, { recursive: true });
  const rendered = Object.entries(FILE_REPORTS).map(([name, render]) => [name, render(model)] as const);
  for (const [name, text] of rendered) await writeAtomically(join(outDir, name), text);
  const markdown = rendered.find(([name]) => name === 'table.md')?.[1] ?? renderMarkdown(model);
  const expected = opts.gate ? new Set(opts.gate.expected.map(checkKey)) : undefined;
  await writeGithub(markdown, results, { env: opts.env, write: opts.write, expected });
  return model;
}

/** Render one table from results; `cells` (run.json's cell facts) give the columns. */
export function renderTable(results: readonly CheckResult[], format: TableFormat, cells: readonly CellFacts[] = []): string {
  return TABLE_RENDERERS[format](buildModel(results, cells));
}

/**
 * `bpfgate table --from DIR --format md|html|json`: the table of a results directory,
 * its columns described by the run's run.json (a directory without one, or a bare
 * results.jsonl, shows its cells by id alone).
 */
export async function renderTableFromDir(dir: string, format: TableFormat): Promise<string> {
  const results = await readResultsDir(dir);
  const manifest = dir.endsWith('.jsonl') ? undefined : await readRunManifest(dir);
  return renderTable(results, format, manifest?.cells ?? []);
}
