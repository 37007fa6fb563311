/**
 * `bpfgate repro NAME|all`: boot the cells where known bugs show (and where they
 * must not) and say, per bug, "reproduced" or "not reproduced", with the evidence.
 */
import { resolve } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import { BpfgateError, EXIT } from '../../core/errors.js';
import { EventBus } from '../../core/events.js';
import { ResultStore } from '../../core/results-store.js';
import { writeReports } from '../../reports/index.js';
import { runMatrix } from '../../runners/orchestrator.js';
import { BUGS, findBug, type Bug } from '../../suites/repro/bugs.js';
import { reproSuite } from '../../suites/repro/index.js';
import { interruptOnSignals } from '../interrupt.js';
import { plainProgress } from '../progress.js';
import { fileInput, planCells, runManifestWriter } from './run.js';

export interface ReproOptions {
  names: string[];
  matrix?: string;
  cells?: string;
  jobs?: number;
  out: string;
  resume: boolean;
  out_stream?: NodeJS.WritableStream;
}

/** The one-line summary of a bug's evidence on a cell. */
function brief(r: CheckResult): string {
  const e = r.evidence;
  const pick = ['ringbuf4096', 'fentry', 'featureProbeSays', 'lsm', 'activeLsm', 'error'].filter((k) => e[k] !== undefined).slice(0, 2);
  return pick.map((k) => `${k}=${JSON.stringify(e[k])}`).join(' ');
}

export function reproVerdict(bug: Bug, results: CheckResult[]): { reproduced: boolean; lines: string[] } {
  const mine = results.filter((r) => r.suite === 'repro' && r.subject === bug.name);
  const shows = mine.filter((r) => r.evidence.observed === 'shows');
  const absent = mine.filter((r) => r.evidence.observed === 'absent');
  const bad = mine.filter((r) => r.status === 'fail' || r.status === 'error');
  const reproduced = bad.length === 0 && shows.length > 0;
  const lines = [`${bug.name}: ${reproduced ? 'reproduced' : 'NOT reproduced'} — ${bug.title}`];
  for (const r of shows) lines.push(`  shows on ${r.cell}${r.status === 'fail' ? ' (where it must not)' : ''}: ${brief(r)}`);
  if (absent.length) lines.push(`  absent on ${absent.map((r) => `${r.cell}${r.status === 'fail' ? ' (where it must show!)' : ''}`).join(', ')}`);
  for (const r of mine.filter((x) => x.status === 'error')) lines.push(`  error on ${r.cell}: ${r.reason} ${brief(r)}`);
  for (const r of mine.filter((x) => x.status === 'skip')) lines.push(`  not applicable on ${r.cell}: ${String(r.evidence.why ?? '')}`);
  if (mine.length && shows.length === 0) lines.push('  the bug showed on no cell of this selection');
  return { reproduced, lines };
}

export async function reproCommand(opts: ReproOptions): Promise<number> {
  const out = opts.out_stream ?? process.stdout;
  const bugs = opts.names.includes('all')
    ? BUGS
    : opts.names.map((n) => {
        const bug = findBug(n);
        if (!bug) throw new BpfgateError('usage', `unknown bug "${n}"; expected all or one of ${BUGS.map((b) => b.name).join(', ')}`);
        return bug;
      });
  const cells = await planCells(opts.matrix, opts.cells);
  const outDir = resolve(opts.out);
  using store = ResultStore.open(outDir, { resume: opts.resume });
  const bus = new EventBus().on(store.listener).on(plainProgress());
  using interrupt = interruptOnSignals();
  const suite = reproSuite(bugs);
  const { results, facts, interrupted } = await runMatrix({
    cells, suites: [suite], documents: [], outDir, store, bus, signal: interrupt.signal,
    onFacts: runManifestWriter(outDir, {
      matrix: opts.matrix ? await fileInput(opts.matrix) : null,
      cells: opts.cells ?? null, suites: [suite.name], policies: { roots: [], files: [] }, schema: null, lock: null,
      triggers: null, agent: null,
    }),
    ...(opts.jobs ? { jobs: opts.jobs } : {}),
  });
  if (interrupted) return interrupt.exitCode;
  await writeReports(outDir, results, facts);
  let exit: number = EXIT.ok;
  for (const bug of bugs) {
    const verdict = reproVerdict(bug, results);
    out.write(`${verdict.lines.join('\n')}\n`);
    // Not reproduced because a guest failed is the machine's fault; otherwise the bug's verdict failed.
    if (!verdict.reproduced) exit = results.some((r) => r.subject === bug.name && r.status === 'error') && exit !== EXIT.unexpectedFailure ? EXIT.infrastructure : EXIT.unexpectedFailure;
  }
  return exit;
}
