/**
 * The agent's own Prometheus counters, read from its metrics endpoint. Chiefly the events it
 * counted as lost: a trigger without its event proves nothing when the agent dropped events
 * meanwhile (under TCG a busy policy, e.g. a tcp_sendmsg hook that sees the agent's own gRPC
 * stream, outruns a one-CPU node). Names as of v1.5.0 (pkg/observer/metrics.go,
 * pkg/metrics/eventmetrics, pkg/metrics/crimetrics; the `observer` subsystem prefixes the
 * ring buffer's).
 */
import type { CheckDraft } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';

/** The counters that say an event was dropped somewhere between the kernel and a listener. */
export const LOST_COUNTERS = [
  // The BPF side could not write an event (label `error`: ENOSPC, ENOENT, ...).
  'tetragon_bpf_missed_events_total',
  // A kprobe or fentry program the kernel skipped (recursion, contention): its event never was.
  'tetragon_missed_prog_probes_total',
  'tetragon_missed_link_probes_total',
  // The reader fell behind the perf ring buffer.
  'tetragon_observer_ringbuf_events_lost_total',
  // The agent's queue between the ring buffer reader and its handlers was full.
  'tetragon_observer_ringbuf_queue_events_lost_total',
  // A gRPC listener (`tetra getevents`) was too slow: events dropped for it.
  'tetragon_notify_overflowed_events_total',
] as const;

export type LostCounts = Partial<Record<(typeof LOST_COUNTERS)[number], number>>;

/**
 * A counter in a Prometheus text exposition, summed over its labels; undefined when absent.
 * A sample line is `name{labels} value [timestamp]`; only plain counters are read here.
 */
export function counterValue(exposition: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

/** The lost-event counters of an exposition (those it holds). */
export function lostCounts(exposition: string): LostCounts {
  const out: LostCounts = {};
  for (const name of LOST_COUNTERS) {
    const v = counterValue(exposition, name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** What was lost between two readings (a counter absent before counts from zero). */
export function lostBetween(before: LostCounts, after: LostCounts): LostCounts {
  const out: LostCounts = {};
  for (const name of LOST_COUNTERS) {
    const d = (after[name] ?? 0) - (before[name] ?? 0);
    if (d > 0) out[name] = d;
  }
  return out;
}

export function totalLost(counts: LostCounts): number {
  return Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
}

/** The verdicts a lost event can explain: the event was owed and did not come. */
const EXPLAINED = new Set<Reason | null>(['no-events', 'event-mismatch', 'not-fired']);

/**
 * A trigger's failure while the agent was losing events is the machine's, not the policy's:
 * `error` with `infra-events-lost`, the failure it would have been and the counts as evidence.
 */
export function unlessLost<C extends Pick<CheckDraft, 'status' | 'reason' | 'evidence'>>(check: C, lost: LostCounts | undefined): C {
  if (!lost || totalLost(lost) === 0 || check.status !== 'fail' || !EXPLAINED.has(check.reason)) return check;
  return { ...check, status: 'error', reason: 'infra-events-lost', evidence: { ...check.evidence, lost, failureWithoutLoss: check.reason } };
}
