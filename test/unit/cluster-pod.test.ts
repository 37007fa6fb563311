/**
 * Pod metadata on real exported events (../shared/corpus/events: a starwars demo
 * cluster's export): the pod predicate, and the cluster suite's pod-metadata check,
 * which must fail loudly when events come without their pod.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedPod, judgePodMetadata, type TriggerPod } from '../../suites/cluster/pod.js';
import { readExport } from '../../suites/tetragon/events.js';
import { podDifferences } from '../../suites/tetragon/match.js';
import type { Trigger } from '../../suites/triggers/model.js';
import { EVENTS } from '../support/shared.js';

// A demo cluster's export: every event of it names its pod.
const { events } = readExport(readFileSync(join(EVENTS, 'testdata', 'events.json'), 'utf8'), 'corpus', { tolerant: true });

const tiefighter = events.find((e) => e.process?.pod?.name === 'tiefighter')!;
/** A trigger whose "marker" is the demo binary: how the suite ties events to a trigger. */
const trigger = { id: 't-demo', marker: tiefighter.process!.binary } as Trigger;
const pod: TriggerPod = {
  namespace: 'default', name: 'tiefighter', container: 'spaceship', image: 'docker.io/tgraf/netperf:latest',
  labels: { org: 'empire', class: 'tiefighter' }, phase: 'Running',
};

describe('the pod an event names', () => {
  it('matches namespace, pod, container, image and labels of a real event', () => {
    expect(podDifferences({ namespace: 'default', name: 'tiefighter', container: 'spaceship', image: 'docker.io/tgraf/netperf:latest', labels: { org: 'empire' } }, tiefighter)).toEqual([]);
  });

  it('names each field that differs, and an event with no pod at all', () => {
    expect(podDifferences({ namespace: 'kube-system', labels: { org: 'alliance' } }, tiefighter)).toEqual([
      'pod.namespace: expected "kube-system", got "default"',
      'pod.labels.org: expected "alliance", got "empire"',
    ]);
    const podless = { ...tiefighter, process: { ...tiefighter.process!, pod: undefined } };
    expect(podDifferences({ namespace: 'default' }, podless)).toEqual(['pod: expected pod metadata, got none']);
  });
});

describe('the pod-metadata check of a trigger', () => {
  it('fails pod-metadata-missing when an event of the trigger comes without its pod, showing the event', () => {
    const stripped = events.map((e) => (e === tiefighter ? { ...e, process: { ...e.process!, pod: undefined } } : e));
    const check = judgePodMetadata(trigger, pod, stripped);
    expect(check).toMatchObject({ status: 'fail', reason: 'pod-metadata-missing' });
    expect(check.evidence.withoutPod).toBeGreaterThanOrEqual(1);
    expect(String(check.evidence.first)).toContain(tiefighter.process!.binary);
  });

  it('fails with the differences when the events name another workload than the trigger pod', () => {
    // This export predates workload fields: a bare pod's workload (itself, kind Pod) is absent.
    const check = judgePodMetadata(trigger, pod, events);
    expect(check).toMatchObject({ status: 'fail', reason: 'event-mismatch' });
    expect((check.evidence.differences as string[]).join(' ')).toMatch(/pod\.workload: expected "tiefighter"/);
    expect(expectedPod(pod)).toMatchObject({ workload: 'tiefighter', workload_kind: 'Pod' });
  });

  it('is untested when no event carries the trigger, and an error when its pod was refused', () => {
    expect(judgePodMetadata({ id: 'x', marker: 'bpfgate-nothing' } as Trigger, pod, events)).toMatchObject({ status: 'skip', reason: 'untested' });
    expect(judgePodMetadata(trigger, { ...pod, refused: 'pods "x" is forbidden' }, events)).toMatchObject({ status: 'error', reason: 'infra-cluster-unreachable' });
  });
});
