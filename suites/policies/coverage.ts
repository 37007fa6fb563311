/**
 * Measured coverage: from the guest's probe counters, taken before and after each
 * trigger, which targets each trigger made fire. The guest's own bookkeeping (the
 * shell that launches a trigger, the tools that read the counters) also hits some
 * probes; the null triggers measure that noise, and a trigger counts as firing a
 * target only when it beats the loudest null run.
 */
import type { GuestRecord } from '../../runners/qemu/protocol.js';

export const NULL_TRIGGER_PREFIX = 'null-';

export interface TriggerRun {
  trigger: string;
  exitCode: number;
  output: string;
  /** Hits per target during the trigger's steps. */
  delta: Map<string, number>;
}

/** The guest's counter deltas (suites/policies/guest/counters.awk): `NAME DELTA` per probe that moved. */
export function parseCounters(body: string): Map<string, number> {
  const counters = new Map<string, number>();
  for (const line of body.split('\n')) {
    const [name, delta] = line.trim().split(/\s+/);
    if (name && delta && /^-?\d+$/.test(delta)) counters.set(name, Number(delta));
  }
  return counters;
}

/** Registration failures: target name -> the kernel's words. */
export function parseRegistered(body: string): Map<string, string> {
  const failed = new Map<string, string>();
  for (const line of body.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) failed.set(line.slice(0, space), line.slice(space + 1).trim());
  }
  return failed;
}

/**
 * Consumes `counters` records in order: each carries the deltas since the previous
 * read. `phase=base` (after a trigger's cleanup) is discarded, `phase=after` is the
 * trigger's own: one TriggerRun each, with the output of a trigger that failed from the
 * record's `trigger-output` part.
 */
export class CoverageTracker {
  readonly runs: TriggerRun[] = [];

  onCounters(record: GuestRecord): TriggerRun | undefined {
    if (record.header.phase !== 'after') return undefined;
    const delta = new Map([...parseCounters(record.body)].filter(([, d]) => d > 0));
    const output = record.parts?.['trigger-output']?.body ?? '';
    const run = { trigger: record.header.trigger ?? '?', exitCode: Number(record.header.rc ?? -1), output, delta };
    this.runs.push(run);
    return run;
  }

  /** The most hits any null trigger caused on each target. */
  noise(): Map<string, number> {
    const noise = new Map<string, number>();
    for (const run of this.runs.filter((r) => r.trigger.startsWith(NULL_TRIGGER_PREFIX))) {
      for (const [name, d] of run.delta) noise.set(name, Math.max(noise.get(name) ?? 0, d));
    }
    return noise;
  }

  /** Targets each real trigger fired, with the hits above noise. */
  firing(): Map<string, Map<string, number>> {
    const noise = this.noise();
    const out = new Map<string, Map<string, number>>();
    for (const run of this.runs) {
      if (run.trigger.startsWith(NULL_TRIGGER_PREFIX)) continue;
      const fired = new Map<string, number>();
      for (const [name, d] of run.delta) {
        const above = d - (noise.get(name) ?? 0);
        if (above > 0) fired.set(name, above);
      }
      out.set(run.trigger, fired);
    }
    return out;
  }
}
