/**
 * The run: every selected suite on every selected cell, in four steps.
 *
 *   1. describe: each cell's platform gathers its facts (fetching kernels, building
 *      guest images); the facts are frozen and handed to `onFacts` (run.json) before
 *      any check exists. A cell whose facts cannot be had keeps an `error` in them.
 *   2. static suites answer from the facts at once;
 *   3. live suites run on the started platforms, cells in parallel (p-limit, --jobs:
 *      preparing and each boot take a slot, waiting takes none);
 *   4. cross checks compare two suites' results of a cell (prediction against reality).
 *
 * Every finished check goes through the event bus, whose first listener is the result
 * store, so it is on disk before anything else sees it. Platforms are looked up by
 * name (runners/platforms.ts); nothing here knows one. On abort (SIGINT/SIGTERM) no new
 * work starts, the started platforms stop what runs, and nothing more is written.
 */
import { cpus } from 'node:os';
import pLimit from 'p-limit';
import { checkKey, type CheckDraft, type CheckResult, type Lane } from '../core/check.js';
import { BpfgateError, InfraError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { CellFacts } from '../core/facts.js';
import type { CellSink, DescribedCell, Platform, PlatformEnv, PlatformSettings, StartedPlatform, SuiteSession } from '../core/platform.js';
import type { Reason } from '../core/reasons.js';
import type { ResultStore } from '../core/results-store.js';
import type { CellContext, CrossCheck, LiveSuite, StaticSuite, Suite } from '../core/suite.js';
import type { Cell, Platform as PlatformId } from '../matrix/cell.js';
import { kernelName } from '../matrix/kernel-catalogue.js';
import type { PolicyDocument } from '../policy/index.js';
import type { Policy, PolicyProblem } from '../policy/model.js';
import { policySubjects } from '../policy/subjects.js';
import { loadPlatform, BUILT_PLATFORMS } from './platforms.js';

export interface RunOptions {
  cells: Cell[];
  suites: Suite[];
  /** Checks over two suites' results of a cell, run when both suites are in the run. */
  crossChecks?: readonly CrossCheck[];
  /** Every policy document read, valid or not (policy/index.ts readPolicies). */
  documents: PolicyDocument[];
  outDir: string;
  store: ResultStore;
  bus: EventBus;
  /** Cells prepared or booted at once. Default: fitted to the cores (each TCG guest keeps one core busy). */
  jobs?: number;
  /** Per-cell timeout; default: the platform's own (boot allowance plus the suites' budgets). */
  timeoutMs?: number;
  /** A lock file pinning kernel package versions. */
  lockFile?: string;
  /** What the user told the platforms (a kubeconfig, Kubernetes binaries). */
  platformSettings?: PlatformSettings;
  /** Aborted on SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** Every cell's facts and the platforms' tool versions, before the first check: run.json. */
  onFacts?(facts: readonly CellFacts[], tools: Record<string, Record<string, string>>): Promise<void>;
}

export interface RunOutcome {
  /** Every check of the run's cells on disk (the resumed ones included). */
  results: CheckResult[];
  facts: CellFacts[];
  /** The run was stopped by a signal: `--resume` completes it. */
  interrupted: boolean;
}

export function defaultJobs(): number {
  return Math.max(1, Math.min(4, cpus().length));
}

class Interrupted extends Error {
  constructor() {
    super('the run was interrupted');
  }
}

/** Facts for a cell whose platform could not describe it: what the matrix says, and the error. */
function unknownFacts(cell: Cell, reason: Reason, message: string): CellFacts {
  return {
    cell: cell.id,
    platform: cell.platform,
    arch: cell.arch,
    pageKiB: cell.pageSize,
    kernel: { name: kernelName(cell.kernel), release: 'unknown' },
    bootArgs: [...cell.bootArgs],
    lsm: [],
    config: {},
    error: { reason, message },
  };
}

function reasonOf(err: unknown): Reason {
  return err instanceof BpfgateError && err.code.startsWith('infra-') ? (err.code as Reason) : 'infra-download';
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export async function runMatrix(opts: RunOptions): Promise<RunOutcome> {
  const { bus, store } = opts;
  const signal = opts.signal ?? new AbortController().signal;
  const policies = opts.documents.flatMap((d) => (d.policy ? [d.policy] : []));
  const policyProblems = new Map<Policy, PolicyProblem[]>(opts.documents.flatMap((d) => (d.policy ? [[d.policy, d.problems] as const] : [])));
  const fileProblems = opts.documents.filter((d) => !d.policy).flatMap((d) => d.problems);
  const subjects = policySubjects(policies);
  const staticSuites = opts.suites.filter((s): s is StaticSuite => s.kind === 'static');
  const liveSuites = opts.suites.filter((s): s is LiveSuite => s.kind === 'live');
  const suiteNames = new Set(opts.suites.map((s) => s.name));
  const crossChecks = (opts.crossChecks ?? []).filter((c) => c.needs.every((n) => suiteNames.has(n)));

  const platforms = new Map<PlatformId, Platform>();
  for (const id of new Set(opts.cells.map((c) => c.platform))) {
    const platform = await loadPlatform(id);
    if (!platform) throw new BpfgateError('usage', `cells of platform "${id}" cannot run yet: bpfgate runs ${BUILT_PLATFORMS.join(', ')} cells`);
    platforms.set(id, platform);
  }

  const limit = pLimit(opts.jobs ?? defaultJobs());
  const slot = <T>(work: () => Promise<T>) =>
    limit(() => {
      if (signal.aborted) throw new Interrupted();
      return work();
    });
  const env: PlatformEnv = {
    outDir: opts.outDir,
    signal,
    slot,
    phase: (cell, phase, detail) => bus.emit({ type: 'phase', cell, phase, ...(detail ? { detail } : {}) }),
    log: (level, message) => bus.emit({ type: 'log', level, message }),
    ...(opts.lockFile ? { lockFile: opts.lockFile } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    settings: opts.platformSettings ?? {},
  };
  bus.emit({ type: 'run-start', cells: opts.cells.map((c) => c.id), suites: opts.suites.map((s) => s.name) });

  // 1. Facts, once, before anything plans.
  const booting = liveSuites.length > 0;
  let described: DescribedCell[];
  try {
    described = await Promise.all(
      opts.cells.map(async (cell): Promise<DescribedCell> => {
        const platform = platforms.get(cell.platform)!;
        let facts: CellFacts;
        let config: ReadonlyMap<string, string> = new Map();
        try {
          ({ facts, config } = await slot(() => platform.describe(cell, { booting }, env)));
        } catch (err) {
          if (err instanceof Interrupted || signal.aborted) throw new Interrupted();
          if (!(err instanceof InfraError)) throw err;
          facts = unknownFacts(cell, reasonOf(err), err.message);
        }
        const agent = liveSuites.map((s) => s.agentOn?.(cell)).find((a) => a !== undefined);
        if (agent) facts.agent = agent;
        return { cell, facts: deepFreeze(facts), config };
      }),
    );
  } catch (err) {
    if (err instanceof Interrupted) return end([]);
    throw err;
  }
  const tools: Record<string, Record<string, string>> = {};
  for (const [id, platform] of platforms) tools[id] = await platform.tools();
  await opts.onFacts?.(described.map((d) => d.facts), tools);

  /** Finished means on disk and not an error: --resume runs errors again. */
  const finished = (cell: string, lane: Lane, suite: string, subject: string, check: string) => {
    const prior = store.get(checkKey({ cell, lane, suite, subject, check }));
    return prior !== undefined && prior.status !== 'error';
  };

  // Each cell's context, its sink, and the session each live suite offers its platform.
  const runs = described.map((d) => prepareCell(d));

  // 2. Static suites: the facts are known, nothing boots.
  for (const run of runs) {
    for (const suite of staticSuites) {
      const t0 = Date.now();
      for (const draft of suite.run(run.ctx)) run.record(suite.name, suite.lane, { ...draft, durationMs: draft.durationMs || Date.now() - t0 });
    }
  }

  // 3. Live suites on the started platforms; disposing them stops whatever still runs.
  const started = new Map<PlatformId, StartedPlatform>();
  const startFailures = new Map<PlatformId, InfraError>();
  try {
    if (booting && !signal.aborted) {
      for (const [id, platform] of platforms) {
        const cells = runs.filter((r) => r.described.cell.platform === id && r.sessions.length > 0);
        if (cells.length === 0) continue;
        try {
          started.set(id, await platform.start(cells.map((r) => ({ ...r.described, sessions: r.sessions as SuiteSession<never>[] })), env));
        } catch (err) {
          if (signal.aborted) break;
          if (!(err instanceof InfraError)) throw err;
          startFailures.set(id, err);
        }
      }
    }
    await Promise.all(runs.map((run) => runLive(run)));
  } finally {
    for (const handle of started.values()) await handle[Symbol.asyncDispose]();
  }

  function prepareCell(d: DescribedCell) {
    const { cell } = d;
    const ctx: CellContext = Object.freeze({ cell, facts: d.facts, config: d.config, policies, policyProblems, fileProblems, subjects });
    const results: CheckResult[] = store.all().filter((r) => r.cell === cell.id);
    const state = { ok: d.facts.error === undefined, startedAt: 0 };
    const record = (suite: string, lane: Lane, draft: CheckDraft) => {
      if (signal.aborted || finished(cell.id, lane, suite, draft.subject, draft.check)) return;
      if (draft.status === 'error') state.ok = false;
      const result: CheckResult = {
        cell: cell.id, lane, suite, subject: draft.subject, check: draft.check, status: draft.status, reason: draft.reason,
        evidence: draft.evidence, durationMs: draft.durationMs, ...(draft.source ? { source: draft.source } : {}),
      };
      results.push(result);
      bus.emit({ type: 'check', result });
    };
    const sink: CellSink = {
      done: (suite, lane, subject, check) => finished(cell.id, lane, suite, subject, check),
      record,
      slot: (work) =>
        slot(() => {
          if (!state.startedAt) {
            state.startedAt = Date.now();
            bus.emit({ type: 'cell-start', cell: cell.id });
          }
          return work();
        }),
    };
    const sessions: SuiteSession<unknown>[] = [];
    for (const suite of liveSuites) {
      const lane = suite.lanes?.[cell.platform] ?? suite.lane;
      const make = (suite.sessions as Record<string, ((c: CellContext) => unknown) | undefined>)[cell.platform];
      if (!make) {
        record(suite.name, lane, {
          subject: cell.id, check: 'platform', status: 'skip', reason: null,
          evidence: { why: `the ${suite.name} suite has no adapter for ${cell.platform} cells` }, durationMs: 0,
        });
        continue;
      }
      sessions.push({ suite: suite.name, lane, budgetMs: suite.budgetMs, session: make(ctx) });
    }
    return { described: d, ctx, results, state, record, sink, sessions };
  }

  async function runLive(run: ReturnType<typeof prepareCell>): Promise<void> {
    const { cell } = run.described;
    const handle = started.get(cell.platform);
    const failure = startFailures.get(cell.platform);
    if (failure && !signal.aborted) {
      // The platform never started (a control plane that did not come up): every check it owed says why.
      const reason: Reason = failure.code.startsWith('infra-') ? (failure.code as Reason) : 'infra-cluster-unreachable';
      for (const { suite, lane, session } of run.sessions) {
        for (const p of (session as { planned(): { subject: string; check: string }[] }).planned()) {
          run.record(suite, lane, { ...p, status: 'error', reason, evidence: { error: failure.message }, durationMs: 0 });
        }
      }
    }
    if (handle && run.sessions.length > 0 && !signal.aborted) {
      try {
        const outcome = await (handle as StartedPlatform).run(run.described, run.sessions as SuiteSession<never>[], run.sink);
        run.state.ok = outcome.ok && run.state.ok;
      } catch (err) {
        if (!(err instanceof Interrupted) && !signal.aborted) throw err;
      }
    }
    if (signal.aborted) return;

    // 4. Cross checks over what the cell's suites answered.
    for (const cross of crossChecks) {
      for (const draft of cross.judge(cell, run.results)) run.record(cross.suite, cross.lane, draft);
    }
    bus.emit({ type: 'cell-end', cell: cell.id, ok: run.state.ok, durationMs: run.state.startedAt ? Date.now() - run.state.startedAt : 0 });
  }

  return end(described.map((d) => d.facts));

  function end(facts: CellFacts[]): RunOutcome {
    const interrupted = signal.aborted;
    const ids = new Set(opts.cells.map((c) => c.id));
    const results = store.all().filter((r) => ids.has(r.cell));
    const counts: Record<string, number> = { pass: 0, fail: 0, skip: 0, error: 0 };
    for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
    bus.emit({ type: 'run-end', counts, interrupted });
    return { results, facts, interrupted };
  }
}
