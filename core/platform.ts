/**
 * The seam between the orchestrator and the places cells run (QEMU guests today,
 * Kubernetes clusters next). Every platform has one lifecycle:
 *
 *   describe(cell)  -> the cell's facts, before any suite plans (fetching what it must)
 *   start(cells)    -> a started handle, AsyncDisposable: disposing it stops every
 *                      guest, process and scratch directory it made, also on Ctrl-C
 *   handle.run(...) -> the suites' sessions on one cell; checks go to the sink
 *
 * A platform declares its session type by augmenting `PlatformSessions`
 * (`declare module '…/core/platform.js' { interface PlatformSessions { qemu: QemuSession } }`),
 * so suites can offer it a typed adapter and nothing here imports a platform.
 */
import type { CheckDraft, Lane } from './check.js';
import type { CellFacts } from './facts.js';
import type { Cell } from '../matrix/cell.js';

/** Platform name -> the session type its cells run. Augmented by each platform. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface PlatformSessions {}

export type PlatformName = keyof PlatformSessions;

/** What the run gives a platform. */
export interface PlatformEnv {
  /** The run's output directory (cells/<id>/ holds a cell's logs). */
  outDir: string;
  /** Aborted on SIGINT/SIGTERM: stop starting work, stop what runs, keep nothing half done. */
  signal: AbortSignal;
  /** Runs work that keeps a core busy (fetching, preparing) when a job slot is free. */
  slot<T>(work: () => Promise<T>): Promise<T>;
  /** Progress of a cell: a phase and a detail (shown live, logged in CI). */
  phase(cell: string, phase: string, detail?: string): void;
  log(level: 'info' | 'warn', message: string): void;
  /** A kernel lock file pinning package versions. */
  lockFile?: string;
  /** Overrides the per-cell timeout the platform computes from the suites' budgets. */
  timeoutMs?: number;
  /** What the user told the platforms (kubeconfig, binaries); each platform reads its own. */
  settings: PlatformSettings;
}

/** Settings of the platforms, from the command line or config; each platform adds its own fields. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface PlatformSettings {}

/** A cell with its frozen facts and its kernel's whole config. */
export interface DescribedCell {
  cell: Cell;
  facts: Readonly<CellFacts>;
  config: ReadonlyMap<string, string>;
}

/** A described cell about to start, with the sessions that will run on it. */
export interface StartingCell<P extends PlatformName> extends DescribedCell {
  sessions: readonly SuiteSession<PlatformSessions[P]>[];
}

/** One suite's session on a cell, with what the platform needs to know of the suite. */
export interface SuiteSession<S> {
  suite: string;
  lane: Lane;
  budgetMs: number;
  session: S;
}

/** What the orchestrator gives one running cell: where its checks go, and its job slots. */
export interface CellSink {
  /** The check is on disk already (--resume): it is neither run again nor written. */
  done(suite: string, lane: Lane, subject: string, check: string): boolean;
  record(suite: string, lane: Lane, draft: CheckDraft): void;
  /** Runs work of this cell that keeps a core busy (a boot) when a job slot is free. */
  slot<T>(work: () => Promise<T>): Promise<T>;
}

export interface Platform<P extends PlatformName = PlatformName> {
  readonly name: P;
  /** Versions of the host tools the platform uses, for run.json. */
  tools(): Promise<Record<string, string>>;
  /**
   * A cell's facts. `booting`: a live suite will start the cell (a QEMU cell then also
   * needs its guest image and an accelerator). Throws an InfraError when they cannot be had.
   */
  describe(cell: Cell, opts: { booting: boolean }, env: PlatformEnv): Promise<{ facts: CellFacts; config: ReadonlyMap<string, string> }>;
  /**
   * Starts the platform for these cells. Each comes with the sessions that will run on it,
   * so a platform that prepares all its cells at once (a cluster's nodes) can ask them
   * what the cells need.
   */
  start(cells: readonly StartingCell<P>[], env: PlatformEnv): Promise<StartedPlatform<P>>;
}

export interface StartedPlatform<P extends PlatformName = PlatformName> extends AsyncDisposable {
  /**
   * Runs the sessions on one cell (a cell whose facts carry an error is charged, not run).
   * Every check a session planned and nothing answered is charged to the infrastructure,
   * unless the run was interrupted: then nothing more is written.
   */
  run(cell: DescribedCell, sessions: SuiteSession<PlatformSessions[P]>[], sink: CellSink): Promise<{ ok: boolean }>;
}
