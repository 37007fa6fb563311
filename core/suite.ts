/**
 * What a suite is, seen from the orchestrator. A static suite answers from the
 * policies and the cell's facts alone. A live suite runs on a started cell: its
 * planning and judging are platform-free, and one small adapter per platform
 * (`sessions`) turns them into that platform's work (a QEMU guest's files and
 * records; later a cluster's objects) and back into checks.
 *
 * Invariant: a suite plans only from a CellContext, whose facts are frozen before any
 * suite sees them; nothing here knows a platform by name.
 */
import type { CheckDraft, CheckResult, Lane } from './check.js';
import type { CellFacts } from './facts.js';
import type { PlatformSessions } from './platform.js';
import type { Cell } from '../matrix/cell.js';
import type { Policy, PolicyProblem } from '../policy/model.js';

/** Everything a suite may read about a cell. Frozen: suites never change it. */
export interface CellContext {
  readonly cell: Cell;
  readonly facts: Readonly<CellFacts>;
  /** The cell kernel's whole config (facts.config holds only the options run.json records). */
  readonly config: ReadonlyMap<string, string>;
  readonly policies: readonly Policy[];
  /** Problems of each policy document (schema-invalid), empty for a valid one. */
  readonly policyProblems: ReadonlyMap<Policy, readonly PolicyProblem[]>;
  /** Files that are not valid YAML: they have no policy to hang their problem on. */
  readonly fileProblems: readonly PolicyProblem[];
  /** Unique subject name of each policy (policy/subjects.ts). */
  readonly subjects: ReadonlyMap<Policy, string>;
}

/** The valid policies of a context: an invalid document says nothing reliable about its hooks. */
export function validPolicies(ctx: CellContext): Policy[] {
  return ctx.policies.filter((p) => (ctx.policyProblems.get(p) ?? []).length === 0);
}

/** The subject a policy is reported under. */
export function subjectOf(ctx: CellContext, policy: Policy): string {
  return ctx.subjects.get(policy) ?? policy.name;
}

export interface StaticSuite {
  kind: 'static';
  name: string;
  lane: Lane;
  run(ctx: CellContext): CheckDraft[];
}

/** A live suite's adapter per platform; a platform without one skips the suite with a reason. */
export type SessionFactories = { [P in keyof PlatformSessions]?: (ctx: CellContext) => PlatformSessions[P] };

export interface LiveSuite {
  kind: 'live';
  name: string;
  lane: Lane;
  /** The lane its checks are filed under on a platform, where that differs from `lane` (a cluster suite: the platform's). */
  lanes?: Partial<Record<Cell['platform'], Lane>>;
  /** Time this suite adds to a cell under emulation, on top of starting the cell. */
  budgetMs: number;
  sessions: SessionFactories;
  /** The agent the suite runs on a cell (recorded in the cell's facts), if any. */
  agentOn?(cell: Cell): { name: string; version: string } | undefined;
}

export type Suite = StaticSuite | LiveSuite;

/**
 * A check over two suites' results on one cell, run after both finished there:
 * prediction against reality. It reads the results the run produced for the cell
 * (the resumed ones included) and nothing else.
 */
export interface CrossCheck {
  /** Where its checks are filed. */
  suite: string;
  lane: Lane;
  /** The suites whose results it compares; it runs only when all of them ran. */
  needs: readonly string[];
  judge(cell: Cell, results: readonly CheckResult[]): CheckDraft[];
}
