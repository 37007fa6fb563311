/**
 * The agent's own counters, read from real Tetragon v1.5.0 metrics endpoints of two cluster
 * nodes (test/fixtures/cluster/README.md), and what they excuse: a trigger's missing event
 * while the agent counted lost events is the machine's failure, not the policy's.
 */
import { describe, expect, it } from 'vitest';
import type { CheckDraft } from '../../core/check.js';
import { counterValue, lostBetween, lostCounts, totalLost, unlessLost } from '../../suites/tetragon/agent-metrics.js';
import { nodeFile } from '../support/cluster-node.js';

const full = nodeFile('socket-directory-mount/x86_64-6.12', 'agent-metrics.prom')!;
const before = nodeFile('socket-directory-mount/x86_64-6.12', 'agent-metrics-before.prom')!;

describe('counters in a real exposition', () => {
  it('reads a plain counter, and sums a labelled one over its series', () => {
    expect(counterValue(full, 'tetragon_cri_cgidmap_resolutions_total')).toBe(6);
    expect(counterValue(full, 'tetragon_cri_cgidmap_resolutions_errors_total')).toBe(1);
    // Two series of the BPF side's failed writes, by error and message type: 4 in all.
    expect(counterValue(full, 'tetragon_bpf_missed_events_total')).toBe(4);
    // A name that is the prefix of others is not confused with them.
    expect(counterValue(full, 'tetragon_cri_cgidmap_resolutions')).toBeUndefined();
    expect(counterValue(full, 'tetragon_no_such_counter_total')).toBeUndefined();
  });

  it('finds every lost-event counter v1.5.0 exports', () => {
    expect(Object.keys(lostCounts(full)).sort()).toEqual([
      'tetragon_bpf_missed_events_total',
      'tetragon_missed_link_probes_total',
      'tetragon_missed_prog_probes_total',
      'tetragon_notify_overflowed_events_total',
      'tetragon_observer_ringbuf_events_lost_total',
      'tetragon_observer_ringbuf_queue_events_lost_total',
    ]);
  });

  it('counts nothing lost across the triggers of a quiet node, though the agent lost events at its start', () => {
    expect(lostCounts(before).tetragon_bpf_missed_events_total).toBe(4);
    expect(lostBetween(lostCounts(before), lostCounts(full))).toEqual({});
  });

  it('counts what moved, and a counter that appeared, from zero', () => {
    const busier = full
      .replace(/^tetragon_notify_overflowed_events_total 0$/m, 'tetragon_notify_overflowed_events_total 17')
      .replace(/^(tetragon_bpf_missed_events_total\{error="ENOENT",msg_op="5"\}) 4$/m, '$1 6');
    const lost = lostBetween(lostCounts(before), lostCounts(busier));
    expect(lost).toEqual({ tetragon_notify_overflowed_events_total: 17, tetragon_bpf_missed_events_total: 2 });
    expect(totalLost(lost)).toBe(19);
  });
});

describe('a failure the lost events explain', () => {
  const failed: Pick<CheckDraft, 'status' | 'reason' | 'evidence'> = { status: 'fail', reason: 'no-events', evidence: { marker: 'bpfgate-t1046' } };

  it('becomes infra-events-lost, keeping the failure it would have been', () => {
    const excused = unlessLost(failed, { tetragon_observer_ringbuf_events_lost_total: 3 });
    expect(excused).toMatchObject({ status: 'error', reason: 'infra-events-lost', evidence: { marker: 'bpfgate-t1046', failureWithoutLoss: 'no-events', lost: { tetragon_observer_ringbuf_events_lost_total: 3 } } });
  });

  it('stands when nothing was lost, when the loss is unknown, and for failures loss cannot cause', () => {
    expect(unlessLost(failed, {})).toBe(failed);
    expect(unlessLost(failed, undefined)).toBe(failed);
    const loadError = { ...failed, reason: 'load-error' as const };
    expect(unlessLost(loadError, { tetragon_notify_overflowed_events_total: 5 })).toBe(loadError);
    const passed = { ...failed, status: 'pass' as const, reason: null };
    expect(unlessLost(passed, { tetragon_notify_overflowed_events_total: 5 })).toBe(passed);
  });
});
