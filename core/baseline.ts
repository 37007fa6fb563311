/**
 * The baseline: a YAML list of known failures, so the gate fails on changes only
 * (like BPF CI's per-arch deny lists). An entry matches a failing check by cell
 * glob, subject glob, optional check glob (picomatch) and its exact reason code.
 * `evaluateGate` only sorts results into unexpected / expected; the exit code rule
 * (1 for an unexpected fail, 3 when only infra errors) lives in the CLI.
 * Invariant: every entry carries the file position it came from, for messages.
 */
import { resolve } from 'node:path';
import picomatch from 'picomatch';
import type { CheckResult } from './check.js';
import { REASONS, isReason, type Reason } from './reasons.js';
import { schemaValidator } from './schemas.js';
import { YamlInput, readInputText } from './yaml-input.js';

export interface BaselineEntry {
  /** Glob on cell ids, e.g. "arm64-*-6.1*". */
  cell: string;
  /** Glob on subjects (a policy name matches itself). */
  subject: string;
  /** Glob on check names ("hook:*"); absent: every check of the subject. */
  check?: string;
  /** The reason the check is known to fail with; another reason is a change. */
  reason: Reason;
  note?: string;
  /** Where the entry is: `file:line`. */
  where: { file: string; line: number };
}

export interface GateResult {
  /** fail/error results no baseline entry expects: these fail the gate. */
  unexpected: CheckResult[];
  /** fail/error results a baseline entry expects. */
  expected: CheckResult[];
  /** Entries whose matching checks now all pass: a note to prune the baseline, not a failure. */
  fixed: BaselineEntry[];
  /** Entries that matched no failing check and are not fixed (no matching check ran, or it failed differently). */
  unusedEntries: BaselineEntry[];
}

type RawEntry = Omit<BaselineEntry, 'where' | 'reason'> & { reason: string };

/** Parse baseline text; an empty file is an empty baseline. */
export function parseBaseline(text: string, file: string): BaselineEntry[] {
  const input = YamlInput.parse(text, file, 'baseline-yaml');
  if (input.value === null) return [];
  // Stage 2 (core/schema/baseline.schema.json), then stage 3: the reason codes bpfgate knows.
  const raw = input.validate(schemaValidator<RawEntry[]>('baseline'), 'baseline-schema');
  return raw.map((e, i) => {
    if (!isReason(e.reason)) {
      throw input.error('baseline-invalid', [i, 'reason'], `expected a known reason code (got "${e.reason}"); known: ${Object.keys(REASONS).join(', ')}`);
    }
    return { ...e, reason: e.reason, where: { file, line: input.locate([i]).line } };
  });
}

/** Read a baseline file (`--baseline FILE`). */
export async function loadBaseline(file: string): Promise<BaselineEntry[]> {
  const path = resolve(file);
  return parseBaseline(await readInputText(path, 'baseline-missing', 'baseline'), path);
}

interface Matcher {
  entry: BaselineEntry;
  /** Does the entry speak about this check at all (cell, subject, check)? */
  covers: (r: CheckResult) => boolean;
}

function matcher(entry: BaselineEntry): Matcher {
  const cell = picomatch(entry.cell);
  const subject = picomatch(entry.subject);
  const check = entry.check === undefined ? () => true : picomatch(entry.check);
  return { entry, covers: (r) => cell(r.cell) && subject(r.subject) && check(r.check) };
}

/** Sort results against the baseline. */
export function evaluateGate(results: readonly CheckResult[], baseline: readonly BaselineEntry[]): GateResult {
  const matchers = baseline.map(matcher);
  const gate: GateResult = { unexpected: [], expected: [], fixed: [], unusedEntries: [] };
  const used = new Set<BaselineEntry>();
  const covered = new Map<BaselineEntry, CheckResult[]>();
  for (const r of results) {
    let expectedBy: BaselineEntry | undefined;
    for (const m of matchers) {
      if (!m.covers(r)) continue;
      const list = covered.get(m.entry);
      if (list) list.push(r);
      else covered.set(m.entry, [r]);
      if ((r.status === 'fail' || r.status === 'error') && r.reason === m.entry.reason) {
        expectedBy ??= m.entry;
        used.add(m.entry);
      }
    }
    if (r.status !== 'fail' && r.status !== 'error') continue;
    (expectedBy ? gate.expected : gate.unexpected).push(r);
  }
  for (const entry of baseline) {
    if (used.has(entry)) continue;
    const checks = covered.get(entry) ?? [];
    if (checks.length > 0 && checks.every((r) => r.status === 'pass')) gate.fixed.push(entry);
    else gate.unusedEntries.push(entry);
  }
  return gate;
}
