/**
 * The report model: one read-only view of a run's CheckResults that every
 * renderer (junit, markdown, json, html, github) reads. Rows are subjects (policies,
 * features, bugs), columns are cells, and each subject x cell pair holds its checks
 * with their evidence, the worst status (error > fail > skip > pass) and the first
 * reason of that worst status.
 * Invariants: deterministic for a given set of results whatever order they finished
 * in (rows sorted by subject, checks by lane/suite/check, columns in matrix order
 * then unknown cells by id); the last result of a check key wins, as in the store.
 */
import { checkKey, type CheckResult, type CheckStatus, type Evidence, type Lane, type SourceRef } from '../core/check.js';
import { REASONS, type Reason } from '../core/reasons.js';
import type { CellFacts } from '../core/facts.js';
import type { Arch, PageSize, Platform } from '../matrix/cell.js';

/** Worst first. */
export const STATUS_ORDER: readonly CheckStatus[] = ['error', 'fail', 'skip', 'pass'];

export type StatusCounts = Record<CheckStatus, number>;

/** A column: what run.json says of a cell (all null for a cell known only by its id). */
export interface ReportCell {
  id: string;
  arch: Arch | null;
  /** Page size in KiB. */
  pages: PageSize | null;
  /** Kernel series, e.g. "6.12" (from the release). */
  kernel: string | null;
  /** `uname -r` of the cell's kernel. */
  release: string | null;
  /** Where the kernel comes from: "trixie linux-image-6.12.118+deb13-arm64-16k 6.12.118-1", or a file. */
  kernelSource: string | null;
  bootArgs: string[];
  /** The active LSM list. */
  lsm: string[] | null;
  /** "tcg", "kvm". */
  accel: string | null;
  /** "tetragon v1.5.0". */
  agent: string | null;
  platform: Platform | null;
}

export interface ModelCheck {
  lane: Lane;
  suite: string;
  check: string;
  status: CheckStatus;
  reason: Reason | null;
  evidence: Evidence;
  durationMs: number;
  source: SourceRef | null;
}

/** One subject on one cell. */
export interface ModelPair {
  status: CheckStatus;
  /** Of the checks with the worst status, the reason a user fixes first (core/reasons.ts order; null when all pass). */
  reason: Reason | null;
  /** Every distinct reason among the pair's checks, in first-seen order. */
  reasons: Reason[];
  counts: StatusCounts;
  checks: ModelCheck[];
}

export interface ModelRow {
  subject: string;
  suites: string[];
  /** The earliest source line among the subject's checks (its policy file), if any. */
  source: SourceRef | null;
  status: CheckStatus;
  counts: StatusCounts;
  /** One entry per model cell id, in column order; null where the subject was not checked. */
  cells: Record<string, ModelPair | null>;
}

export interface ReasonCount {
  code: Reason;
  description: string;
  /** Checks with this reason. */
  count: number;
}

export interface ReportModel {
  schemaVersion: 1;
  summary: { checks: number; subjects: number; cells: number; counts: StatusCounts; durationMs: number };
  cells: ReportCell[];
  rows: ModelRow[];
  /** Reasons present, by code. */
  reasons: ReasonCount[];
}

export function emptyCounts(): StatusCounts {
  return { error: 0, fail: 0, skip: 0, pass: 0 };
}

/** The worse of two statuses. */
export function worse(a: CheckStatus, b: CheckStatus): CheckStatus {
  return STATUS_ORDER.indexOf(a) <= STATUS_ORDER.indexOf(b) ? a : b;
}

/** A cell's facts as a column. */
export function reportCell(facts: CellFacts): ReportCell {
  const k = facts.kernel;
  const known = k.release !== 'unknown';
  return {
    id: facts.cell,
    arch: facts.arch,
    pages: facts.pageKiB,
    kernel: known ? (/^\d+\.\d+/.exec(k.release)?.[0] ?? null) : null,
    release: known ? k.release : null,
    kernelSource: k.package ? [k.suite, k.package, k.version].filter(Boolean).join(' ') : k.name,
    bootArgs: [...facts.bootArgs],
    lsm: facts.lsm.length ? [...facts.lsm] : null,
    accel: facts.accel?.accel ?? null,
    agent: facts.agent ? `${facts.agent.name} ${facts.agent.version}` : null,
    platform: facts.platform,
  };
}

/** A column for a cell known only by its id (results without run.json, or lint's static pseudo-cell): nothing is guessed. */
export function cellFromId(id: string): ReportCell {
  return { id, arch: null, pages: null, kernel: null, release: null, kernelSource: null, bootArgs: [], lsm: null, accel: null, agent: null, platform: null };
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function compareChecks(a: ModelCheck, b: ModelCheck): number {
  return byCodePoint(a.lane, b.lane) || byCodePoint(a.suite, b.suite) || byCodePoint(a.check, b.check);
}

function compareSources(a: SourceRef, b: SourceRef): number {
  return byCodePoint(a.file, b.file) || a.line - b.line || (a.column ?? 0) - (b.column ?? 0);
}

/** Build the model; `cells` (the run's cell facts, in matrix order) give the columns. */
export function buildModel(results: readonly CheckResult[], cells: readonly CellFacts[] = []): ReportModel {
  const latest = new Map<string, CheckResult>();
  for (const r of results) latest.set(checkKey(r), r);

  const columns: ReportCell[] = cells.map(reportCell);
  const known = new Set(columns.map((c) => c.id));
  const extra = [...new Set([...latest.values()].map((r) => r.cell))].filter((id) => !known.has(id)).sort(byCodePoint);
  columns.push(...extra.map(cellFromId));

  const bySubject = new Map<string, Map<string, ModelCheck[]>>();
  const suites = new Map<string, Set<string>>();
  const sources = new Map<string, SourceRef>();
  const summary = { checks: 0, subjects: 0, cells: columns.length, counts: emptyCounts(), durationMs: 0 };
  const reasonCounts = new Map<Reason, number>();
  for (const r of latest.values()) {
    const perCell = bySubject.get(r.subject) ?? new Map<string, ModelCheck[]>();
    bySubject.set(r.subject, perCell);
    const checks = perCell.get(r.cell) ?? [];
    perCell.set(r.cell, checks);
    checks.push({
      lane: r.lane,
      suite: r.suite,
      check: r.check,
      status: r.status,
      reason: r.reason,
      evidence: r.evidence,
      durationMs: r.durationMs,
      source: r.source ?? null,
    });
    suites.set(r.subject, (suites.get(r.subject) ?? new Set()).add(r.suite));
    const seen = sources.get(r.subject);
    if (r.source && (!seen || compareSources(r.source, seen) < 0)) sources.set(r.subject, r.source);
    summary.checks++;
    summary.counts[r.status]++;
    summary.durationMs += r.durationMs;
    if (r.reason) reasonCounts.set(r.reason, (reasonCounts.get(r.reason) ?? 0) + 1);
  }

  const rows: ModelRow[] = [...bySubject.keys()].sort(byCodePoint).map((subject) => {
    const perCell = bySubject.get(subject) ?? new Map<string, ModelCheck[]>();
    const row: ModelRow = {
      subject,
      suites: [...(suites.get(subject) ?? [])].sort(byCodePoint),
      source: sources.get(subject) ?? null,
      status: 'pass',
      counts: emptyCounts(),
      cells: {},
    };
    for (const col of columns) {
      const checks = perCell.get(col.id);
      const pair = checks ? buildPair(checks) : null;
      row.cells[col.id] = pair;
      if (!pair) continue;
      row.status = worse(row.status, pair.status);
      for (const s of STATUS_ORDER) row.counts[s] += pair.counts[s];
    }
    return row;
  });
  summary.subjects = rows.length;

  const reasons = [...reasonCounts.entries()]
    .sort(([a], [b]) => byCodePoint(a, b))
    .map(([code, count]) => ({ code, description: REASONS[code] ?? code, count }));
  return { schemaVersion: 1, summary, cells: columns, rows, reasons };
}

const REASON_RANK = new Map((Object.keys(REASONS) as Reason[]).map((r, i) => [r, i]));

function buildPair(unsorted: ModelCheck[]): ModelPair {
  const checks = [...unsorted].sort(compareChecks);
  const counts = emptyCounts();
  let status: CheckStatus = 'pass';
  const reasons: Reason[] = [];
  for (const c of checks) {
    counts[c.status]++;
    status = worse(status, c.status);
    if (c.reason && !reasons.includes(c.reason)) reasons.push(c.reason);
  }
  // The reason shown is the one a user fixes first (REASONS is declared in that order), not the first by name.
  const worst = checks.filter((c) => c.status === status && c.reason).map((c) => c.reason as Reason);
  worst.sort((a, b) => REASON_RANK.get(a)! - REASON_RANK.get(b)!);
  const reason = status === 'pass' ? null : (worst[0] ?? null);
  return { status, reason, reasons, counts, checks };
}
