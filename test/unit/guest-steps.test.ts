/**
 * What the host makes of the guest's step records (runners/qemu/steps.ts) and of records
 * whose parts come before them (the probe's attach and its counter).
 */
import { describe, expect, it } from 'vitest';
import { encodeRecord, parseConsole } from '../../runners/qemu/protocol.js';
import { failedSteps, stepFailureEvidence, stepNames } from '../../runners/qemu/steps.js';
import { readAttach } from '../../suites/probe/evidence.js';

const boot = (...frames: [string, string, string?][]) => parseConsole(frames.map(([type, header, body], i) => encodeRecord(i + 1, type, header, body)).join('')).records;

describe('failed steps, from step-start and step-end records', () => {
  const records = boot(
    ['step-start', 'name=10-probe.sh'],
    ['step-end', 'name=10-probe.sh rc=0 uptime=9.1'],
    ['step-start', 'name=20-policies.sh'],
    ['step-end', 'name=20-policies.sh rc=2 uptime=12.5', '/bpfgate/steps/20-policies.sh: line 7: syntax error: unexpected "fi"'],
    ['step-start', 'name=30-tetragon.sh'],
  );

  it('gives every step that ended with a non-zero status with its output, and the one the guest never finished', () => {
    expect(failedSteps(records)).toEqual([
      { step: '20-policies.sh', rc: 2, output: '/bpfgate/steps/20-policies.sh: line 7: syntax error: unexpected "fi"', uptime: 12.5 },
      { step: '30-tetragon.sh', rc: undefined, output: '' },
    ]);
  });

  it('charges each suite only the failures of its own steps', () => {
    const files = [{ path: '/bpfgate/steps/20-policies.sh' }, { path: '/bpfgate/policies/kprobes' }, { path: '/bpfgate/steps/10-probe.sh' }];
    expect(stepNames(files)).toEqual(['20-policies.sh', '10-probe.sh']);
    const failures = failedSteps(records);
    expect(stepFailureEvidence(failures, stepNames(files)).failedSteps?.map((f) => f.step)).toEqual(['20-policies.sh']);
    expect(stepFailureEvidence(failures, ['10-probe.sh'])).toEqual({});
    expect(stepFailureEvidence(failures).failedSteps).toHaveLength(2);
  });

  it('finds nothing in a boot whose steps all succeeded', () => {
    expect(failedSteps(records.slice(0, 2))).toEqual([]);
  });
});

describe('an attach record and its counter', () => {
  it('reads the hits from the attach-hits part sent before the attach record', () => {
    const [, attach] = boot(['attach-hits', 'of=attach prog=lsm', '[{"key":0,"value":3,"formatted":{"value":3}}]'], ['attach', 'prog=lsm rc=0', '']);
    expect(readAttach(attach!)).toMatchObject({ object: 'lsm', feature: 'lsm', attached: true, hits: 3 });
  });

  it('has no hits without the part, and the loader\'s cause line when the attach failed', () => {
    const [attach] = boot(['attach', 'prog=fentry rc=255', "libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)\nError: failed to pin all programs"]);
    expect(readAttach(attach!)).toMatchObject({ attached: false, hits: undefined, errno: 524, error: "libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)" });
    const [lonely] = boot(['attach', 'prog=kprobe rc=0', '']);
    expect(readAttach(lonely!).hits).toBeUndefined();
  });
});
