/**
 * The report model: one read-only view of a run's CheckResults that every
 * renderer (junit, markdown, json, html, github, the ATT&CK layer) reads. Rows are
 * subjects (policies, features, triggers, nodes, bugs), each in its section and named
 * as users know it; columns are cells, and each subject x cell pair holds its checks
 * with their evidence, the worst status (error > fail > skip > pass), the first
 * reason of that worst status and what to do about it. Beside the grid: what changed
 * against the baseline and against a previous run, and counts per cell.
 * Invariants: deterministic for a given set of results whatever order they finished
 * in (rows sorted by section then subject, checks by lane/suite/check, columns in
 * matrix order then unknown cells by id); the last result of a check key wins, as in
 * the store. No clock and no I/O: what the context gives is all it knows.
 */
import type { GateResult } from '../core/baseline.js';
import { checkKey, type CheckResult, type CheckStatus, type Evidence, type Lane, type SourceRef } from '../core/check.js';
import { REASONS, type Reason } from '../core/reasons.js';
import type { CellFacts } from '../core/facts.js';
import type { Arch, PageSize, Platform } from '../matrix/cell.js';
import { adviceFor } from './advice.js';

/** Worst first. */
export const STATUS_ORDER: readonly CheckStatus[] = ['error', 'fail', 'skip', 'pass'];
/** Counts read pass first, as the bars do. */
export const COUNT_ORDER = ['pass', 'fail', 'error', 'skip'] as const;
/** Marks that read in any font and need no special one: words, in every report. */
export const STATUS_MARK: Record<CheckStatus, string> = { pass: 'ok', fail: 'FAIL', error: 'ERROR', skip: 'skip' };

/** `1 cell`, `2 cells`. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

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
  /** A cluster cell's node: its name, its container runtime and that runtime's socket. */
  node: { name: string; runtime: string; criSocket: string } | null;
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
  /** What to do about `reason`, sharpened by its check's evidence and the cell (reports/advice.ts); null when all pass. */
  advice: string | null;
  /** Every distinct reason among the pair's checks, in first-seen order. */
  reasons: Reason[];
  counts: StatusCounts;
  checks: ModelCheck[];
}

/**
 * Where a subject is shown: kernel features (probe and boot suites), policies, ATT&CK
 * triggers, cluster nodes and platforms, named bug reproductions.
 */
export type Section = 'features' | 'policies' | 'triggers' | 'nodes' | 'bugs';

export const SECTIONS: readonly { id: Section; title: string; one: string; many: string; about: string }[] = [
  { id: 'features', title: 'Kernel features', one: 'kernel feature', many: 'kernel features', about: 'what each kernel offers eBPF, measured by attaching a program and counting its runs' },
  { id: 'policies', title: 'Policies', one: 'policy', many: 'policies', about: 'every policy on every cell: schema, portability, the features it needs, its hooks attached and fired, the agent\'s load state' },
  { id: 'triggers', title: 'Triggers', one: 'trigger', many: 'triggers', about: 'ATT&CK technique re-enactments: which hooks they fired, which events the agent exported' },
  { id: 'nodes', title: 'Nodes and platforms', one: 'node or platform', many: 'nodes and platforms', about: 'the cluster\'s nodes and agents, and suites a platform cannot run' },
  { id: 'bugs', title: 'Bug reproductions', one: 'bug reproduction', many: 'bug reproductions', about: 'named bugs: shown where they must show, absent where they must not' },
];

/** The sections the model has rows in, with how many. */
export function sectionSizes(model: ReportModel): (readonly [(typeof SECTIONS)[number], number])[] {
  return SECTIONS.map((s) => [s, model.rows.filter((r) => r.section === s.id).length] as const).filter(([, n]) => n > 0);
}

/** What the model holds, in words: `71 policies, 12 triggers`. */
export function sectionSummary(model: ReportModel): string {
  return sectionSizes(model).map(([s, n]) => plural(n, s.one, s.many)).join(', ');
}

/** A trigger of the ATT&CK catalogue, as reports name it. */
export interface TriggerInfo {
  id: string;
  /** `T1003.008`. */
  technique: string;
  name: string;
  tactic: string;
  /** The hooks the trigger is meant to reach (`kprobe:sys_setns`, `lsm:file_open`): the hooks that detect it. */
  hooks: string[];
}

/** How a row is shown: the name users know, and where it comes from. */
export interface RowLabel {
  /** A policy's metadata.name, a trigger's technique name, a feature. */
  name: string;
  /** A policy's file relative to its --policies root; a trigger's id. */
  detail: string | null;
  /** The ATT&CK technique and tactic of a trigger. */
  technique: string | null;
  tactic: string | null;
  /** The line a row starts at (a policy document, a trigger file); `href` is a link to its file (add `#L<line>`), or null. */
  source: { file: string; line: number; href: string | null } | null;
}

export interface ModelRow {
  subject: string;
  section: Section;
  label: RowLabel;
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

/** The status and reason of one check at one time. */
export interface CheckState {
  status: CheckStatus;
  reason: Reason | null;
}

/** One check that differs between a previous run and this one. */
export interface ModelChange {
  /** worse/better: the status moved; changed: same status, another reason; new/gone: only one run has the check. */
  kind: 'worse' | 'better' | 'changed' | 'new' | 'gone';
  cell: string;
  subject: string;
  /** The section the subject's row is in (sectionOf). */
  section: Section;
  lane: Lane;
  suite: string;
  check: string;
  before: CheckState | null;
  after: CheckState | null;
}

export const CHANGE_KINDS: readonly ModelChange['kind'][] = ['worse', 'changed', 'better', 'new', 'gone'];

/** This run against a previous one (`--compare DIR`). */
export interface ModelComparison {
  /** The previous run, as the user named it. */
  against: string;
  counts: Record<ModelChange['kind'], number>;
  /** Worse first, then changed, better, new, gone; by subject, cell and check within each. */
  changes: ModelChange[];
}

/** A failing check, named for a list. */
export interface CheckRef {
  cell: string;
  subject: string;
  section: Section;
  check: string;
  status: CheckStatus;
  reason: Reason | null;
}

/** This run against the baseline (`--baseline FILE`). */
export interface ModelBaseline {
  /** Failures the baseline does not list: these fail the gate. */
  unexpected: CheckRef[];
  /** Failures it lists. */
  expected: number;
  /** Entries whose checks now all pass. */
  fixed: { cell: string; subject: string; check: string | null; reason: Reason; where: string }[];
}

export interface ReportModel {
  schemaVersion: 1;
  summary: {
    checks: number;
    subjects: number;
    cells: number;
    counts: StatusCounts;
    durationMs: number;
    /** Per cell id: its subject x cell pairs by status. */
    perCell: Record<string, StatusCounts>;
  };
  /** The run that produced the results (run.json), when known. */
  run: { bpfgate: string; startedAt: string } | null;
  cells: ReportCell[];
  rows: ModelRow[];
  /** Reasons present, by code. */
  reasons: ReasonCount[];
  /** The trigger catalogue the reports name triggers and techniques by. */
  triggers: TriggerInfo[];
  baseline: ModelBaseline | null;
  comparison: ModelComparison | null;
}

/** What the model knows beside the results (all optional: results alone make a model). */
export interface ModelContext {
  /** run.json's policy files, relative to their --policies roots: policies are named by them. */
  policyFiles?: readonly string[];
  /** A link to a source file (a line is added as `#L<line>`), or null where there is none. */
  link?: (file: string) => string | null;
  triggers?: readonly TriggerInfo[];
  run?: { bpfgate: string; startedAt: string };
  gate?: GateResult;
  /** A previous run's results, and how to name it. */
  previous?: { against: string; results: readonly CheckResult[] };
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
    node: facts.node ? { ...facts.node } : null,
  };
}

/** A column for a cell known only by its id (results without run.json, or lint's static pseudo-cell): nothing is guessed. */
export function cellFromId(id: string): ReportCell {
  return { id, arch: null, pages: null, kernel: null, release: null, kernelSource: null, bootArgs: [], lsm: null, accel: null, agent: null, platform: null, node: null };
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function compareChecks(a: ModelCheck, b: ModelCheck): number {
  return byCodePoint(a.lane, b.lane) || byCodePoint(a.suite, b.suite) || byCodePoint(a.check, b.check);
}

function compareSources(a: SourceRef, b: SourceRef): number {
  return byCodePoint(a.file, b.file) || a.line - b.line || (a.column ?? 0) - (b.column ?? 0);
}

/** Checks whose subject is an ATT&CK trigger (kernel-lane coverage, the agents' events and pod metadata). */
const TRIGGER_CHECK = /^(coverage|tetragon:events|cluster:events|pod-metadata(:.*)?)$/;
/** Checks whose subject is a node or a platform, not a policy. */
const NODE_CHECK = /^(cluster:agent|tetragon:agent|platform)$/;

/**
 * The section a check files its subject under. Per check, not per subject: a policy
 * may share its name with a kernel feature (`override-return`), and then the two are
 * two rows.
 */
export function sectionOf(suite: string, check: string): Section {
  if (NODE_CHECK.test(check)) return 'nodes';
  if (suite === 'probe' || suite === 'boot') return 'features';
  if (suite === 'repro') return 'bugs';
  if (TRIGGER_CHECK.test(check)) return 'triggers';
  return 'policies';
}

/** The policy file a source names, relative to its --policies root (the longest run.json entry it ends with). */
export function policyFileOf(file: string, policyFiles: readonly string[]): string | null {
  const norm = file.split('\\').join('/');
  let best: string | null = null;
  for (const rel of policyFiles) {
    if ((norm === rel || norm.endsWith(`/${rel}`)) && (best === null || rel.length > best.length)) best = rel;
  }
  return best;
}

function labelOf(subject: string, section: Section, source: SourceRef | null, ctx: ModelContext, triggers: ReadonlyMap<string, TriggerInfo>, evidenceTechnique: { technique?: string; tactic?: string }): RowLabel {
  const link = (file: string) => ctx.link?.(file) ?? null;
  if (section === 'triggers') {
    const t = triggers.get(subject);
    return {
      name: t?.name ?? subject,
      detail: subject,
      technique: t?.technique ?? evidenceTechnique.technique ?? null,
      tactic: t?.tactic ?? evidenceTechnique.tactic ?? null,
      source: source ? { file: source.file.split('/').slice(-1)[0] ?? source.file, line: source.line, href: link(source.file) } : null,
    };
  }
  if (section === 'policies') {
    // `name@path` tells apart policies that share a name; the name is what users know.
    const at = subject.indexOf('@');
    const name = at > 0 ? subject.slice(0, at) : subject;
    const file = source ? (policyFileOf(source.file, ctx.policyFiles ?? []) ?? source.file) : at > 0 ? subject.slice(at + 1) : null;
    return { name, detail: file, technique: null, tactic: null, source: source && file ? { file, line: source.line, href: link(source.file) } : null };
  }
  return { name: subject, detail: null, technique: null, tactic: null, source: null };
}

const SECTION_RANK = new Map(SECTIONS.map((s, i) => [s.id, i]));

/** Build the model; `cells` (the run's cell facts, in matrix order) give the columns. */
export function buildModel(results: readonly CheckResult[], cells: readonly CellFacts[] = [], ctx: ModelContext = {}): ReportModel {
  const latest = new Map<string, CheckResult>();
  for (const r of results) latest.set(checkKey(r), r);

  const columns: ReportCell[] = cells.map(reportCell);
  const known = new Set(columns.map((c) => c.id));
  const extra = [...new Set([...latest.values()].map((r) => r.cell))].filter((id) => !known.has(id)).sort(byCodePoint);
  columns.push(...extra.map(cellFromId));

  // Rows are keyed by section and subject: see sectionOf.
  const byRow = new Map<string, { subject: string; section: Section; perCell: Map<string, ModelCheck[]>; suites: Set<string>; source: SourceRef | null; technique: { technique?: string; tactic?: string } }>();
  const perCell: Record<string, StatusCounts> = Object.fromEntries(columns.map((c) => [c.id, emptyCounts()]));
  const summary = { checks: 0, subjects: 0, cells: columns.length, counts: emptyCounts(), durationMs: 0, perCell };
  const reasonCounts = new Map<Reason, number>();
  for (const r of latest.values()) {
    const section = sectionOf(r.suite, r.check);
    const key = `${section}\u0000${r.subject}`;
    let row = byRow.get(key);
    if (!row) {
      row = { subject: r.subject, section, perCell: new Map(), suites: new Set(), source: null, technique: {} };
      byRow.set(key, row);
    }
    const checks = row.perCell.get(r.cell) ?? [];
    row.perCell.set(r.cell, checks);
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
    row.suites.add(r.suite);
    if (r.source && (!row.source || compareSources(r.source, row.source) < 0)) row.source = r.source;
    if (typeof r.evidence.technique === 'string' && !row.technique.technique) {
      row.technique = { technique: r.evidence.technique, ...(typeof r.evidence.tactic === 'string' ? { tactic: r.evidence.tactic } : {}) };
    }
    summary.checks++;
    summary.counts[r.status]++;
    summary.durationMs += r.durationMs;
    if (r.reason) reasonCounts.set(r.reason, (reasonCounts.get(r.reason) ?? 0) + 1);
  }

  const triggers = new Map((ctx.triggers ?? []).map((t) => [t.id, t]));
  const rows: ModelRow[] = [...byRow.values()]
    .sort((a, b) => SECTION_RANK.get(a.section)! - SECTION_RANK.get(b.section)! || byCodePoint(a.subject, b.subject))
    .map(({ subject, section, perCell: checksByCell, suites, source, technique }) => {
      const row: ModelRow = {
        subject,
        section,
        label: labelOf(subject, section, source, ctx, triggers, technique),
        suites: [...suites].sort(byCodePoint),
        source,
        status: 'pass',
        counts: emptyCounts(),
        cells: {},
      };
      for (const col of columns) {
        const checks = checksByCell.get(col.id);
        const pair = checks ? buildPair(checks, col) : null;
        row.cells[col.id] = pair;
        if (!pair) continue;
        row.status = worse(row.status, pair.status);
        perCell[col.id]![pair.status]++;
        for (const s of STATUS_ORDER) row.counts[s] += pair.counts[s];
      }
      return row;
    });
  summary.subjects = rows.length;

  const reasons = [...reasonCounts.entries()]
    .sort(([a], [b]) => byCodePoint(a, b))
    .map(([code, count]) => ({ code, description: REASONS[code] ?? code, count }));
  return {
    schemaVersion: 1,
    summary,
    run: ctx.run ?? null,
    cells: columns,
    rows,
    reasons,
    triggers: [...(ctx.triggers ?? [])],
    baseline: ctx.gate ? baselineOf(ctx.gate) : null,
    comparison: ctx.previous ? compareRuns(ctx.previous.against, ctx.previous.results, [...latest.values()]) : null,
  };
}

const REASON_RANK = new Map((Object.keys(REASONS) as Reason[]).map((r, i) => [r, i]));

/** Reasons in the order core/reasons.ts lists them (the reports' order); an unknown code last. */
export function compareReasons(a: string, b: string): number {
  return (REASON_RANK.get(a as Reason) ?? Infinity) - (REASON_RANK.get(b as Reason) ?? Infinity);
}

function buildPair(unsorted: ModelCheck[], cell: ReportCell): ModelPair {
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
  const worst = checks.filter((c) => c.status === status && c.reason);
  worst.sort((a, b) => compareReasons(a.reason!, b.reason!));
  const first = status === 'pass' ? undefined : worst[0];
  const reason = first?.reason ?? null;
  const advice = first && reason ? adviceFor({ reason, evidence: first.evidence, check: first.check, cell }) : null;
  return { status, reason, advice, reasons, counts, checks };
}

const refOf = (r: CheckResult): CheckRef => ({ cell: r.cell, subject: r.subject, section: sectionOf(r.suite, r.check), check: r.check, status: r.status, reason: r.reason });

function compareRefs(a: CheckRef, b: CheckRef): number {
  return byCodePoint(a.subject, b.subject) || byCodePoint(a.cell, b.cell) || byCodePoint(a.check, b.check);
}

function baselineOf(gate: GateResult): ModelBaseline {
  return {
    unexpected: gate.unexpected.map(refOf).sort(compareRefs),
    expected: gate.expected.length,
    fixed: gate.fixed.map((e) => ({ cell: e.cell, subject: e.subject, check: e.check ?? null, reason: e.reason, where: `${e.where.file}:${e.where.line}` })),
  };
}

/** Every check whose status or reason differs between two runs, or that only one of them has. */
export function compareRuns(against: string, previous: readonly CheckResult[], current: readonly CheckResult[]): ModelComparison {
  const before = new Map(previous.map((r) => [checkKey(r), r]));
  const after = new Map(current.map((r) => [checkKey(r), r]));
  const changes: ModelChange[] = [];
  const state = (r: CheckResult | undefined): CheckState | null => (r ? { status: r.status, reason: r.reason } : null);
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const b = before.get(key);
    const a = after.get(key);
    const r = (a ?? b)!;
    let kind: ModelChange['kind'];
    if (!b) kind = 'new';
    else if (!a) kind = 'gone';
    else if (a.status !== b.status) kind = STATUS_ORDER.indexOf(a.status) < STATUS_ORDER.indexOf(b.status) ? 'worse' : 'better';
    else if (a.reason !== b.reason) kind = 'changed';
    else continue;
    changes.push({ kind, cell: r.cell, subject: r.subject, section: sectionOf(r.suite, r.check), lane: r.lane, suite: r.suite, check: r.check, before: state(b), after: state(a) });
  }
  const rank = new Map(CHANGE_KINDS.map((k, i) => [k, i]));
  changes.sort((x, y) => rank.get(x.kind)! - rank.get(y.kind)! || byCodePoint(x.subject, y.subject) || byCodePoint(x.cell, y.cell) || byCodePoint(x.check, y.check) || byCodePoint(x.lane, y.lane) || byCodePoint(x.suite, y.suite));
  const counts = { worse: 0, better: 0, changed: 0, new: 0, gone: 0 };
  for (const c of changes) counts[c.kind]++;
  return { against, counts, changes };
}
