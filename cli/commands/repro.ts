/**
 * `bpfgate repro NAME|all`: run the named bug reproductions and say, per bug, "reproduced"
 * or "not reproduced", with the evidence. Kernel bugs boot the matrix cells where they
 * must show (and where they must not) through the orchestrator; runtime bugs run on the
 * host cell `host-containerd` (Debian's containerd in a private mount namespace,
 * runners/containerd/). Both write to the same results.jsonl, run.json (every cell's facts,
 * before the first check) and reports.
 */
import { resolve } from 'node:path';
import picomatch from 'picomatch';
import { checkKey, type CheckDraft, type CheckResult, type Lane } from '../../core/check.js';
import { BpfgateError, EXIT, InfraError } from '../../core/errors.js';
import { EventBus } from '../../core/events.js';
import type { CellFacts } from '../../core/facts.js';
import { isReason } from '../../core/reasons.js';
import { ResultStore } from '../../core/results-store.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadMatrix } from '../../matrix/load.js';
import type { Cell } from '../../matrix/cell.js';
import { writeReports } from '../../reports/index.js';
import { describeHost, HOST_CONTAINERD_CELL, type RuntimeVersions } from '../../runners/containerd/host.js';
import { runMatrix } from '../../runners/orchestrator.js';
import { BUGS, findBug, type Bug, type KernelBug, type RuntimeBug } from '../../suites/repro/bugs.js';
import { judgeSocketRestart } from '../../suites/repro/cri-socket.js';
import { reproSuite } from '../../suites/repro/index.js';
import { AGENT_BUGS, agentBesideSuite, agentLines, agentPolicyDocuments } from '../../suites/repro/agent.js';
import { loadBundle } from '../../suites/tetragon/bundle.js';
import { sha256File } from '../../core/download.js';
import { interruptOnSignals } from '../interrupt.js';
import { plainProgress } from '../progress.js';
import { fileInput, runManifestWriter } from './run.js';

export interface ReproOptions {
  names: string[];
  matrix?: string;
  cells?: string;
  jobs?: number;
  out: string;
  resume: boolean;
  /** Tetragon bundles: the agent's own answer beside the kernel bugs it meets (suites/repro/agent.ts). */
  tetragon?: string[];
  out_stream?: NodeJS.WritableStream;
}

/** The one-line summary of a kernel bug's evidence on a cell. */
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
  // A bug with several checks per cell names the check; its own summary may span lines.
  const where = (r: CheckResult) => (r.check === 'repro' ? r.cell : `${r.cell} ${r.check}`);
  const detail = (r: CheckResult) => (bug.summary ? bug.summary(r.evidence).replace(/\n/g, '\n    ') : brief(r));
  const lines = [`${bug.name}: ${reproduced ? 'reproduced' : 'NOT reproduced'} — ${bug.title}`];
  for (const r of shows) lines.push(`  shows on ${where(r)}${r.status === 'fail' ? ' (where it must not)' : ''}: ${detail(r)}`);
  if (bug.summary) {
    for (const r of absent) lines.push(`  absent on ${where(r)}${r.status === 'fail' ? ' (where it must show!)' : ''}: ${detail(r)}`);
  } else if (absent.length) {
    lines.push(`  absent on ${absent.map((r) => `${where(r)}${r.status === 'fail' ? ' (where it must show!)' : ''}`).join(', ')}`);
  }
  for (const r of mine.filter((x) => x.status === 'error')) lines.push(`  error on ${where(r)}: ${r.reason} ${brief(r)}${r.evidence.why ? ` ${String(r.evidence.why)}` : ''}`);
  for (const r of mine.filter((x) => x.status === 'skip')) lines.push(`  not applicable on ${r.cell}: ${String(r.evidence.why ?? '')}`);
  if (mine.length && shows.length === 0) lines.push('  the bug showed on no cell of this selection');
  return { reproduced, lines };
}

/**
 * The cells of a repro run: the matrix cells for the kernel bugs, and the host cell for the
 * runtime bugs, narrowed by `--cells` (comma-separated globs; one that matches none of the
 * candidates is a usage error, as for `run`).
 */
async function reproCells(opts: ReproOptions, kernel: boolean, runtime: boolean): Promise<{ cells: Cell[]; host: boolean }> {
  const matrixCells = kernel ? (opts.matrix ? await loadMatrix(opts.matrix) : await loadDefaultMatrix()).cells : [];
  const candidates = [...matrixCells.map((c) => c.id), ...(runtime ? [HOST_CONTAINERD_CELL] : [])];
  const globs = (opts.cells ?? '').split(',').map((g) => g.trim()).filter(Boolean);
  if (globs.length === 0) return { cells: matrixCells, host: runtime };
  const matchers = globs.map((g) => picomatch(g));
  for (const [i, isMatch] of matchers.entries()) {
    if (!candidates.some((id) => isMatch(id))) {
      throw new BpfgateError('cells-no-match', `--cells: "${globs[i]}" matches no cell of these bugs; the cells are: ${candidates.join(', ')}`);
    }
  }
  const selected = (id: string) => matchers.some((isMatch) => isMatch(id));
  return { cells: matrixCells.filter((c) => selected(c.id)), host: runtime && selected(HOST_CONTAINERD_CELL) };
}

interface HostRun {
  facts: CellFacts;
  versions: RuntimeVersions | undefined;
  store: ResultStore;
  bus: EventBus;
  signal: AbortSignal;
}

/** How each runtime bug runs on the host cell: its experiment (runners/containerd) and its judge (suites/repro). */
const RUNTIME_REPROS: Record<string, (run: HostRun, versions: RuntimeVersions, started: number) => Promise<CheckDraft[]>> = {
  'cri-socket-stale': async (run, versions, started) => {
    const cell = run.facts.cell;
    // Loaded on demand: the gRPC stack costs every other command 0.2 s at start.
    const { observeSocketRestart } = await import('../../runners/containerd/stale-socket.js');
    const obs = await observeSocketRestart({
      arch: run.facts.arch,
      versions,
      signal: run.signal,
      onPhase: (phase, detail) => run.bus.emit({ type: 'phase', cell, phase, ...(detail ? { detail } : {}) }),
      onLog: (line) => run.bus.emit({ type: 'log', level: 'info', message: `${cell}: ${line}` }),
    });
    return judgeSocketRestart(obs, Date.now() - started);
  },
};

const LANE: Lane = 'runtime';

/** Runs the runtime bugs on the host cell; checks go through the bus (the store first). Nothing is written once interrupted. */
async function runHostCell(run: HostRun, bugs: RuntimeBug[]): Promise<void> {
  const cell = run.facts.cell;
  const done = (subject: string, check: string) => {
    const prior = run.store.get(checkKey({ cell, lane: LANE, suite: 'repro', subject, check }));
    return prior !== undefined && prior.status !== 'error';
  };
  const record = (draft: CheckDraft) => {
    if (run.signal.aborted || done(draft.subject, draft.check)) return;
    run.bus.emit({ type: 'check', result: { cell, lane: LANE, suite: 'repro', ...draft } });
  };
  for (const bug of bugs) {
    if (run.signal.aborted) return;
    if (bug.checks.every((check) => done(bug.name, check))) {
      run.bus.emit({ type: 'phase', cell, phase: 'resume', detail: `${bug.name}: every check already on disk` });
      continue;
    }
    const started = Date.now();
    run.bus.emit({ type: 'cell-start', cell });
    const charge = (reason: string, message: string) =>
      bug.checks.forEach((check) =>
        record({ subject: bug.name, check, status: 'error', reason: isReason(reason) ? reason : 'infra-runtime', evidence: { error: message }, durationMs: Date.now() - started }),
      );
    let ok = false;
    const experiment = RUNTIME_REPROS[bug.name];
    if (run.facts.error || !run.versions) charge(run.facts.error?.reason ?? 'infra-runtime', run.facts.error?.message ?? 'the host runtime was not described');
    else if (!experiment) charge('infra-runtime', `bpfgate has no experiment for ${bug.name}`);
    else {
      try {
        const drafts = await experiment(run, run.versions, started);
        drafts.forEach(record);
        ok = drafts.every((d) => d.status !== 'error');
      } catch (err) {
        // An interrupted experiment has cleaned up after itself; nothing it saw is written.
        if (run.signal.aborted) return;
        if (!(err instanceof InfraError)) throw err;
        charge(err.code, err.message);
      }
    }
    run.bus.emit({ type: 'cell-end', cell, ok, durationMs: Date.now() - started });
  }
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
  const kernelBugs = bugs.filter((b): b is KernelBug => b.kind === 'kernel');
  const runtimeBugs = bugs.filter((b): b is RuntimeBug => b.kind === 'runtime');
  const { cells, host } = await reproCells(opts, kernelBugs.length > 0, runtimeBugs.length > 0);
  const outDir = resolve(opts.out);
  using store = ResultStore.open(outDir, { resume: opts.resume });
  const bus = new EventBus().on(store.listener).on(plainProgress());
  using interrupt = interruptOnSignals();
  const suite = reproSuite(kernelBugs);
  const withAgent = opts.tetragon?.length && kernelBugs.some((b) => (AGENT_BUGS as readonly string[]).includes(b.name));
  const bundles = withAgent ? await Promise.all(opts.tetragon!.map(loadBundle)) : [];
  const agentSuite = withAgent ? agentBesideSuite(bundles) : undefined;
  const documents = agentSuite ? await agentPolicyDocuments() : [];
  // The host cell is described before anything runs: its facts go to run.json with the others'.
  const described = host ? await describeHost(HOST_CONTAINERD_CELL) : undefined;
  const hostFacts = described ? [described.facts] : [];
  const hostTools: Record<string, Record<string, string>> = described ? { containerd: described.tools } : {};
  const writeManifest = runManifestWriter(outDir, {
    matrix: opts.matrix && cells.length > 0 ? await fileInput(opts.matrix) : null,
    cells: opts.cells ?? null, suites: agentSuite ? [suite.name, agentSuite.name] : [suite.name], policies: { roots: [], files: [] }, schema: null, lock: null,
    triggers: null,
    agent: agentSuite ? { bundles: await Promise.all(bundles.map(async (b) => ({ arch: b.arch, version: b.version, sha256: await sha256File(b.tetragon) }))), args: [], boots: 1 } : null,
  });

  let results: CheckResult[] = [];
  let facts: CellFacts[] = [];
  if (cells.length > 0) {
    const outcome = await runMatrix({
      cells, suites: agentSuite ? [suite, agentSuite] : [suite], documents, outDir, store, bus, signal: interrupt.signal,
      onFacts: (matrixFacts, tools) => writeManifest([...matrixFacts, ...hostFacts], { ...tools, ...hostTools }),
      ...(opts.jobs ? { jobs: opts.jobs } : {}),
    });
    if (outcome.interrupted) return interrupt.exitCode;
    results = outcome.results;
    facts = outcome.facts;
  } else {
    bus.emit({ type: 'run-start', cells: hostFacts.map((f) => f.cell), suites: [suite.name] });
    await writeManifest(hostFacts, hostTools);
  }
  if (described) {
    await runHostCell({ facts: described.facts, versions: described.versions, store, bus, signal: interrupt.signal }, runtimeBugs);
    if (cells.length === 0) bus.emit({ type: 'run-end', counts: {}, interrupted: interrupt.signal.aborted });
    if (interrupt.signal.aborted) return interrupt.exitCode;
    results = [...results, ...store.all().filter((r) => r.cell === described.facts.cell)];
    facts = [...facts, described.facts];
  }
  await writeReports(outDir, results, facts);
  let exit: number = EXIT.ok;
  for (const bug of bugs) {
    const verdict = reproVerdict(bug, results);
    out.write(`${verdict.lines.join('\n')}\n`);
    if (agentSuite && (AGENT_BUGS as readonly string[]).includes(bug.name)) out.write(`${agentLines(results).join('\n')}\n`);
    // Not reproduced because a guest or the runtime failed is the machine's fault; otherwise the bug's verdict failed.
    if (!verdict.reproduced) exit = results.some((r) => r.subject === bug.name && r.status === 'error') && exit !== EXIT.unexpectedFailure ? EXIT.infrastructure : EXIT.unexpectedFailure;
  }
  return exit;
}
