/**
 * Pod metadata on a trigger's events: every event tied to the trigger (by its marker)
 * must name the pod bpfgate ran it in: namespace, pod, container, image, the labels it
 * set, and the workload (a bare pod is its own workload, kind Pod: Tetragon v1.5.0's
 * podhelpers.GetWorkloadMetaFromPod). Events without a pod are the field's silent
 * failure (a stale CRI socket, a container the agent never mapped): `pod-metadata-missing`,
 * with the event as evidence. Pure: the cluster adapter hands it what it saw.
 */
import type { CheckDraft } from '../../core/check.js';
import { summarizeEvent, type TetragonEvent } from '../tetragon/events.js';
import { markerOf, podDifferences } from '../tetragon/match.js';
import type { PodPredicate, Trigger } from '../triggers/model.js';

/** The pod a trigger ran in, as the cluster reported it when it ended. */
export interface TriggerPod {
  namespace: string;
  name: string;
  container: string;
  /** The image as the runtime reports it in the pod's status (what Tetragon exports). */
  image: string;
  labels: Record<string, string>;
  phase: string;
  exitCode?: number;
  /** The API server refused the pod: its words. */
  refused?: string;
}

/** What the trigger's events must say of their pod. */
export function expectedPod(pod: TriggerPod): PodPredicate {
  return { namespace: pod.namespace, name: pod.name, container: pod.container, image: pod.image, labels: pod.labels, workload: pod.name, workload_kind: 'Pod' };
}

export function judgePodMetadata(trigger: Trigger, pod: TriggerPod | undefined, events: readonly TetragonEvent[]): Omit<CheckDraft, 'source'> {
  const base = { subject: trigger.id, check: 'pod-metadata', durationMs: 0 };
  if (!pod || pod.refused) {
    return { ...base, status: 'error', reason: 'infra-cluster-unreachable', evidence: { why: pod?.refused ? `the API server refused the trigger pod: ${pod.refused}` : 'the trigger pod was never created' } };
  }
  const mine = events.filter((e) => markerOf(e, [trigger.marker]) === trigger.marker);
  const expected = expectedPod(pod);
  if (mine.length === 0) {
    return { ...base, status: 'skip', reason: 'untested', evidence: { why: `no event carries ${trigger.marker}: nothing to read pod metadata from`, pod: `${pod.namespace}/${pod.name}` } };
  }
  const podless = mine.filter((e) => !e.process?.pod);
  if (podless.length > 0) {
    return {
      ...base,
      status: 'fail',
      reason: 'pod-metadata-missing',
      evidence: { expected, events: mine.length, withoutPod: podless.length, first: summarizeEvent(podless[0]!), raw: podless[0]!.raw },
    };
  }
  const wrong = mine.map((e) => ({ e, differences: podDifferences(expected, e) })).filter((x) => x.differences.length > 0);
  if (wrong.length > 0) {
    return { ...base, status: 'fail', reason: 'event-mismatch', evidence: { expected, events: mine.length, mismatched: wrong.length, differences: wrong[0]!.differences, first: summarizeEvent(wrong[0]!.e) } };
  }
  return { ...base, status: 'pass', reason: null, evidence: { pod: expected, events: mine.length, container: mine[0]!.process?.pod?.container?.id } };
}
