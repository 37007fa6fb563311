/**
 * Prediction against reality on real runs: the kernel lane's verdict and the agent's load
 * state of every corpus policy on x86_64-6.12, with Tetragon v1.5.0 run as users run it (no
 * flags), and the same policies' kprobe ones again with `--disable-kprobe-multi`
 * (test/fixtures/tetragon/README.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { comparePrediction } from '../../suites/tetragon/prediction.js';
import { PROJECT_ROOT } from '../support/shared.js';

const read = (name: string): CheckResult[] =>
  readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon', name), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as CheckResult);

/**
 * Where the agent refuses for a reason no kernel shows, in its own words: a policy of a newer
 * CRD than the agent (usdts), a template never filled in (${PODCIDR}), and the agent's own
 * argument-type check of a list.
 */
const AGENT_ONLY: Record<string, string> = {
  'usdts@tetragon-examples/usdt.yaml': 'unknown field "usdts"',
  'usdts@tetragon-examples/usdt-set.yaml': 'unknown field "usdts"',
  'monitor-network-activity-outside-cluster-cidr-range@tetragon-extra/examples/policylibrary/egress.yaml': 'MatchArgs value ${PODCIDR} invalid',
  'monitor-network-activity-outside-cluster-cidr-range@tetragon-extra/examples/quickstart/network_egress_cluster.yaml': 'MatchArgs value ${PODCIDR} invalid',
  'enforce-network-activity-outside-cluster-cidr-range': 'MatchArgs value ${PODCIDR} invalid',
  'list-syscalls-tracepoint': "error list 'dups' argument type is not syscall64",
};

describe('prediction against a real agent run with no flags, on the whole corpus', async () => {
  const results = read('x86_64-6.12-corpus.results.jsonl');
  const cell = (await loadDefaultMatrix()).cells.find((c) => c.id === 'x86_64-6.12')!;
  const predictions = comparePrediction(cell, results);
  const of = (subject: string) => predictions.find((p) => p.subject === subject);
  const load = (subject: string) => results.find((r) => r.subject === subject && r.check === 'tetragon:load')!;

  it('compares every policy both lanes gave a verdict on, and gives the run\'s own verdicts', () => {
    const judged = results.filter((r) => r.check === 'tetragon:load' && r.status !== 'error' && results.some((k) => k.subject === r.subject && k.check === 'hooks' && k.status !== 'error'));
    expect(predictions.map((p) => p.subject).sort()).toEqual(judged.map((l) => l.subject).sort());
    expect(predictions.length).toBeGreaterThan(80);
    // The cross check the run itself wrote is what this code says today.
    const recorded = results.filter((r) => r.check === 'prediction');
    expect(predictions.map((p) => [p.subject, p.status, p.reason]).sort()).toEqual(recorded.map((p) => [p.subject, p.status, p.reason]).sort());
  });

  it('predicts every tail-call refusal, kprobe.multi and uprobe.multi alike, from the probe', () => {
    const refused = results.filter((r) => r.check === 'tetragon:load' && r.reason === 'tailcall-attach-type');
    expect(refused.length).toBeGreaterThan(50);
    for (const r of refused) {
      // A policy the kernel lane already fails (uprobe-binaries: no /lib64/libc.so.6 on Debian) is predicted to fail for that.
      const kernel = results.find((k) => k.subject === r.subject && k.check === 'hooks')!;
      expect(of(r.subject), r.subject).toMatchObject({ status: 'pass', evidence: { predicted: kernel.status === 'fail' ? kernel.reason : 'tailcall-attach-type' } });
    }
    expect(of('connect@tetragon-examples/tcp-connect.yaml')?.evidence.kernelLane).toMatchObject({ status: 'pass', kprobeMultiTailCalls: 'refused' });
    expect(load('uprobe@tetragon-examples/uprobe.yaml')).toMatchObject({ reason: 'tailcall-attach-type', evidence: { uprobeMulti: true } });
    expect(String(load('uprobe@tetragon-examples/uprobe.yaml').evidence.tetraAdd)).toContain('bpf_multi_uprobe_v612.o');
  });

  it('knows which policies escape it: the loader is a sensor of its own, and a policy may turn kprobe.multi off itself', () => {
    expect(load('loader@tetragon-examples/loader.yaml').status).toBe('pass');
    expect(of('loader@tetragon-examples/loader.yaml')).toMatchObject({ status: 'pass', evidence: { predicted: 'loads' } });
    // sshd.yaml sets spec.options disable-kprobe-multi: "1".
    expect(load('accept@tetragon-extra/examples/policylibrary/sshd.yaml')).toMatchObject({ status: 'pass', evidence: { kprobeMulti: false } });
    expect(of('accept@tetragon-extra/examples/policylibrary/sshd.yaml')?.status).toBe('pass');
  });

  it('agrees where both refuse for a missing helper or symbol', () => {
    for (const p of predictions.filter((x) => x.status === 'pass' && x.evidence.predicted !== 'loads' && x.evidence.predicted !== 'tailcall-attach-type')) {
      expect(['override-unsupported', 'symbol-missing', 'binary-missing']).toContain(p.evidence.predicted);
      expect(load(p.subject).status).toBe('fail');
    }
    expect(of('security-override')).toMatchObject({ status: 'pass', evidence: { predicted: 'override-unsupported' } });
  });

  it('disagrees only where the agent refuses for a reason no kernel shows, each in the agent\'s words', () => {
    const disagree = predictions.filter((p) => p.status === 'fail');
    expect(disagree.map((p) => p.subject).sort()).toEqual(Object.keys(AGENT_ONLY).sort());
    for (const p of disagree) expect(String(load(p.subject).evidence.tetraAdd ?? load(p.subject).evidence.error)).toContain(AGENT_ONLY[p.subject]);
  });
});

describe('the same kprobe policies with --disable-kprobe-multi', async () => {
  const results = read('x86_64-6.12-corpus-no-kprobe-multi.results.jsonl');
  const cell = (await loadDefaultMatrix()).cells.find((c) => c.id === 'x86_64-6.12')!;
  const predictions = comparePrediction(cell, results);
  const loads = results.filter((r) => r.check === 'tetragon:load');

  it('loads the policies the tail-call check refused with kprobe.multi, and predicts that', () => {
    const passed = loads.filter((r) => r.status === 'pass');
    expect(passed.length).toBeGreaterThan(50);
    for (const r of passed.filter((x) => x.evidence.kprobeMulti !== undefined)) {
      expect(r.evidence.kprobeMulti).toBe(false);
      expect(predictions.find((p) => p.subject === r.subject)).toMatchObject({ status: 'pass', evidence: { predicted: 'loads' } });
    }
  });

  it('still refuses the uprobe ones: the flag turns off kprobe.multi only, and the prediction says so', () => {
    const uprobes = loads.filter((r) => r.subject.startsWith('uprobe@'));
    expect(uprobes).toHaveLength(4);
    for (const r of uprobes) {
      expect(r).toMatchObject({ reason: 'tailcall-attach-type', evidence: { uprobeMulti: true } });
      expect(predictions.find((p) => p.subject === r.subject)?.status).toBe('pass');
    }
    expect(predictions.find((p) => p.subject === 'uprobe@uprobe.yaml')?.evidence.predicted).toBe('tailcall-attach-type');
  });
});
