/**
 * Reports: one read-only model, several renderers, tied together by one map from
 * output file to renderer (as vitest ties reporter names to classes). File reports are
 * written once, at the end of a run, each atomically (a temp file renamed), so a reader
 * never sees half a table. GitHub output is added when GITHUB_ACTIONS=true.
 * What the model knows beside the results is gathered here, once: the run.json of the
 * directory (policy files by their --policies root, the run's version and start), the
 * trigger catalogue (technique names), links to source lines, the baseline's verdict
 * and a previous run (`--compare DIR`).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { writeAtomically } from '../core/atomic-write.js';
import type { GateResult } from '../core/baseline.js';
import { checkKey, type CheckResult } from '../core/check.js';
import type { CellFacts } from '../core/facts.js';
import { readResultsDir } from '../core/results-store.js';
import { readRunManifest, type RunManifest } from '../core/run-manifest.js';
import { loadTriggerCatalogue, loadTriggerFiles } from '../suites/triggers/load.js';
import { renderAttackLayer } from './attack.js';
import { githubEnabled, writeGithub } from './github.js';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';
import { buildModel, sectionOf, type ModelContext, type ReportModel, type TriggerInfo } from './model.js';

/** `attack`: the ATT&CK Navigator layer (attack-layer.json). */
export type TableFormat = 'md' | 'html' | 'json' | 'attack';

/** Output file -> renderer. */
export const FILE_REPORTS = {
  'junit.xml': renderJunit,
  'table.md': renderMarkdown,
  'table.html': renderHtml,
  'table.json': renderJson,
  'attack-layer.json': renderAttackLayer,
} as const satisfies Record<string, (model: ReportModel) => string>;

const TABLE_RENDERERS: Record<TableFormat, (model: ReportModel) => string> = { md: renderMarkdown, html: renderHtml, json: renderJson, attack: renderAttackLayer };

/** A previous run's results, to show what changed (`--compare DIR`). */
export interface PreviousRun {
  /** The directory as the user named it. */
  against: string;
  results: CheckResult[];
}

/** Read a previous output directory (or its results.jsonl) for `--compare`; bad input is an InputError naming the file. */
export async function readPreviousRun(dir: string): Promise<PreviousRun> {
  return { against: dir, results: await readResultsDir(dir) };
}

export interface WriteReportsOptions {
  /** The gate's verdict: failures the baseline expects are annotated as warnings. */
  gate?: GateResult;
  env?: NodeJS.ProcessEnv;
  /** Where GitHub workflow commands go (default: stdout). */
  write?: (line: string) => void;
  /** A previous run: the reports open with what changed against it. */
  compare?: PreviousRun;
}

/** A source path, URL-encoded per segment. */
const encodePath = (path: string) => path.split(sep).join('/').split('/').map(encodeURIComponent).join('/');

/**
 * Links to policy and trigger files: in GitHub Actions, the file at the commit being
 * built (when it lies in the workspace); elsewhere a path relative to the page's
 * directory, when the file is there to open.
 */
export function sourceLinker(env: NodeJS.ProcessEnv, pageDir: string): (file: string) => string | null {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_SHA: sha, GITHUB_WORKSPACE: workspace } = env;
  return (file) => {
    const abs = resolve(file);
    if (githubEnabled(env) && server && repo && sha && workspace) {
      const rel = relative(workspace, abs);
      return rel.startsWith('..') || isAbsolute(rel) ? null : `${server}/${repo}/blob/${sha}/${encodePath(rel)}`;
    }
    // "./" first, so that no file name can read as a URL scheme.
    return existsSync(abs) ? `./${encodePath(relative(resolve(pageDir), abs))}` : null;
  };
}

const info = (t: TriggerInfo): TriggerInfo => ({ id: t.id, technique: t.technique, name: t.name, tactic: t.tactic, hooks: [...t.hooks] });

/** The shipped catalogue, read once per process (it does not change while bpfgate runs). */
let shipped: Promise<TriggerInfo[]> | undefined;

/** The trigger catalogue, and the files of triggers the catalogue does not have (`--triggers`), by their sources. */
async function triggerInfos(results: readonly CheckResult[]): Promise<TriggerInfo[]> {
  shipped ??= loadTriggerCatalogue().then((ts) => ts.map(info));
  const catalogue = await shipped;
  const known = new Set(catalogue.map((t) => t.id));
  const files = new Set<string>();
  for (const r of results) {
    if (known.has(r.subject) || !r.source || files.has(r.source.file)) continue;
    if (sectionOf(r.suite, r.check) === 'triggers' && existsSync(r.source.file)) files.add(r.source.file);
  }
  if (files.size === 0) return catalogue;
  // A trigger file that no longer loads names nothing: its results still show under their ids.
  const own = await loadTriggerFiles([...files]).then((ts) => ts.map(info), () => []);
  return [...catalogue, ...own.filter((t) => !known.has(t.id))];
}

/** What the model knows beside the results. */
async function reportContext(results: readonly CheckResult[], manifest: RunManifest | undefined, pageDir: string, env: NodeJS.ProcessEnv, extra: { gate?: GateResult; compare?: PreviousRun }): Promise<ModelContext> {
  return {
    link: sourceLinker(env, pageDir),
    triggers: await triggerInfos(results),
    ...(manifest ? { policyFiles: manifest.inputs.policies.files.map((f) => f.path), run: { bpfgate: manifest.bpfgate, startedAt: manifest.startedAt } } : {}),
    ...(extra.gate ? { gate: extra.gate } : {}),
    ...(extra.compare ? { previous: extra.compare } : {}),
  };
}

/** Write junit.xml, table.md, table.html and table.json to `outDir`; returns the model they show. */
export async function writeReports(
  outDir: string,
  results: readonly CheckResult[],
  cells: readonly CellFacts[],
  opts: WriteReportsOptions = {},
): Promise<ReportModel> {
  await mkdir(outDir, { recursive: true });
  const env = opts.env ?? process.env;
  const manifest = await readRunManifest(outDir);
  const model = buildModel(results, cells, await reportContext(results, manifest, outDir, env, opts));
  const rendered = Object.entries(FILE_REPORTS).map(([name, render]) => [name, render(model)] as const);
  for (const [name, text] of rendered) await writeAtomically(join(outDir, name), text);
  const markdown = rendered.find(([name]) => name === 'table.md')?.[1] ?? renderMarkdown(model);
  const expected = opts.gate ? new Set(opts.gate.expected.map(checkKey)) : undefined;
  await writeGithub(markdown, results, { env, write: opts.write, expected });
  return model;
}

/** Render one table from results; `cells` (run.json's cell facts) give the columns; `context` what else the model knows. */
export function renderTable(results: readonly CheckResult[], format: TableFormat, cells: readonly CellFacts[] = [], context: ModelContext = {}): string {
  return TABLE_RENDERERS[format](buildModel(results, cells, context));
}

export interface RenderFromDirOptions {
  /** A previous run to compare with. */
  compare?: PreviousRun;
  /** For links to source lines (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * `bpfgate table --from DIR --format md|html|json|attack`: the table of a results
 * directory, its columns described by the run's run.json (a directory without one, or
 * a bare results.jsonl, shows its cells by id alone).
 */
export async function renderTableFromDir(dir: string, format: TableFormat, opts: RenderFromDirOptions = {}): Promise<string> {
  const results = await readResultsDir(dir);
  const bare = dir.endsWith('.jsonl');
  const manifest = bare ? undefined : await readRunManifest(dir);
  const context = await reportContext(results, manifest, bare ? join(dir, '..') : dir, opts.env ?? process.env, opts);
  return renderTable(results, format, manifest?.cells ?? [], context);
}
