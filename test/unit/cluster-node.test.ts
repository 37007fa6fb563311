/**
 * A cluster node judged from what real nodes left behind (test/fixtures/cluster/README.md):
 * an x86_64-6.12 node and an arm64-16k-6.12 node of an assembled cluster running Tetragon
 * v1.5.0 from its chart, with the CRI lookup on and containerd restarted between two
 * rounds of trigger pods: once with the chart's own mount of the socket file, once with
 * the socket's directory mounted.
 */
import { describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { AFTER_RESTART_CHECK, judgeNode, POD_METADATA_CHECK } from '../../suites/cluster/judge.js';
import { agentNames, type TetragonPlan } from '../../suites/tetragon/plan.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { CheckDraft } from '../../core/check.js';
import { nodeEvidence } from '../support/cluster-node.js';
import { EXAMPLES } from '../support/shared.js';
import { join } from 'node:path';

const NODES = [
  { dir: 'x86_64-6.12', arch: 'x86_64' },
  { dir: 'arm64-16k-6.12', arch: 'arm64' },
] as const;
const RAN = ['t1059-004-unix-shell', 't1083-file-and-directory-discovery'];
const triggers = (await loadTriggerCatalogue()).filter((t) => RAN.includes(t.id));

async function planOf(files: string[]): Promise<TetragonPlan> {
  const { policies } = await readPolicies(files.map((f) => join(EXAMPLES, f)));
  return { bundle: undefined, policies, subjects: policies.map((p) => p.name), names: agentNames(policies), bootOf: policies.map(() => 0), bootCount: 1 };
}
const plan = await planOf(['lsm_bprm_check.yaml']);
const verdicts = (checks: CheckDraft[], check: string) => checks.filter((c) => c.check === check).map((c) => [c.subject, c.status, c.reason]);

describe.each(NODES)('the chart mounting the CRI socket file, containerd restarted: $dir', ({ dir, arch }) => {
  const evidence = nodeEvidence(`socket-file-mount/${dir}`, dir, arch, true);
  const checks = judgeNode(plan, triggers, evidence);

  it('gives the pods started before the restart their metadata', () => {
    expect(verdicts(checks, POD_METADATA_CHECK)).toEqual(RAN.map((t) => [t, 'pass', null]));
  });

  it('loses it for the pods started after: cri-socket-stale, with the inodes and the agent\'s own errors', () => {
    expect(verdicts(checks, AFTER_RESTART_CHECK)).toEqual(RAN.map((t) => [t, 'fail', 'cri-socket-stale']));
    const stale = checks.find((c) => c.check === AFTER_RESTART_CHECK)!;
    const restart = stale.evidence.restart as { inode: { before: number; after: number }; agentSees: { before: string; after: string } };
    expect(restart.inode.after).not.toBe(restart.inode.before);
    // The agent's bind mount still holds the socket's first inode, which containerd unlinked.
    expect(restart.agentSees).toEqual({ before: String(restart.inode.before), after: String(restart.inode.before) });
    expect((stale.evidence.criResolveFailed as string[]).join('\n')).toMatch(/criResolve failed.*connect: connection refused/);
    // The event as the agent streamed it, marker and all, without its pod.
    const raw = JSON.stringify(stale.evidence.raw);
    expect(raw).toContain(`bpfgate-${stale.subject}`);
    expect(raw).not.toContain('"pod"');
  });

  it('is only pod-metadata-missing when the CRI lookup was off: the inodes alone do not make the bug', () => {
    const off = judgeNode(plan, triggers, { ...evidence, criLookup: false });
    expect(verdicts(off, AFTER_RESTART_CHECK)).toEqual(RAN.map((t) => [t, 'fail', 'pod-metadata-missing']));
  });
});

describe.each(NODES)('the socket\'s directory mounted instead, containerd restarted: $dir', ({ dir, arch }) => {
  const evidence = nodeEvidence(`socket-directory-mount/${dir}`, dir, arch, true);
  const checks = judgeNode(plan, triggers, evidence);

  it('keeps the pod metadata of the pods started after the restart: the fix, shown', () => {
    expect(verdicts(checks, POD_METADATA_CHECK)).toEqual(RAN.map((t) => [t, 'pass', null]));
    expect(verdicts(checks, AFTER_RESTART_CHECK)).toEqual(RAN.map((t) => [t, 'pass', null]));
    const pass = checks.find((c) => c.check === AFTER_RESTART_CHECK)!;
    expect(pass.evidence.pod).toMatchObject({ namespace: expect.stringMatching(/^bpfgate-/), container: 'trigger', image: 'localhost/bpfgate/trigger:1', workload_kind: 'Pod' });
  });

  it('fails pod-metadata-missing, with the event, when the same events come without their pod', () => {
    const round = evidence.restart!.round;
    const podless = round.events.map((e) => ({ ...e, process: e.process ? { ...e.process, pod: undefined } : e.process }));
    const checks = judgeNode(plan, triggers, { ...evidence, restart: { ...evidence.restart!, round: { ...round, events: podless } } });
    const missing = checks.filter((c) => c.check === AFTER_RESTART_CHECK);
    // The directory mount followed the new socket: missing metadata there is not the socket bug.
    expect(missing.map((c) => c.reason)).toEqual(['pod-metadata-missing', 'pod-metadata-missing']);
    expect(missing[0]!.evidence.withoutPod).toBeGreaterThan(0);
  });
});
