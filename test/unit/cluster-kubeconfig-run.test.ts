/**
 * Twelve policies on a running two-node cluster through the kubeconfig platform
 * (test/fixtures/cluster/README.md, `kubeconfig-12-policies`): each node's own load states
 * from its agent, the triggers judged on each node's own stream, and the lost-event
 * counters that excuse what the arm64 node's agent dropped. Real agent output, judged by
 * the functions a live node goes through.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { policySubjects } from '../../policy/subjects.js';
import { CLUSTER_CHECKS, judgeNode, POD_METADATA_CHECK } from '../../suites/cluster/judge.js';
import { judgeLoads } from '../../suites/tetragon/judge.js';
import { agentNames, type TetragonPlan } from '../../suites/tetragon/plan.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { nodeEvidence } from '../support/cluster-node.js';
import { EXAMPLES, EXTRA } from '../support/shared.js';

const FILES = [
  ...['lsm_file_open', 'sys_setuid', 'tcp-connect', 'filename_monitoring', 'sys_clock_settime'].map((f) => join(EXAMPLES, `${f}.yaml`)),
  join(EXTRA, 'examples', 'quickstart', 'file_monitoring_enforce.yaml'),
  ...['security_bprm_check', 'sys_mount', 'sys_ptrace', 'kprobe_commit_creds', 'lsm_bprm_check'].map((f) => join(EXAMPLES, `${f}.yaml`)),
  join(EXTRA, 'docs', 'security-observability-with-ebpf', '04_chapter', '01_cilium_tracing_policy', '02_nsenter.yaml'),
];
const TRIGGERS = [
  't1003-008-etc-passwd-and-shadow', 't1548-001-setuid-and-setgid', 't1548-credential-syscalls', 't1046-network-service-discovery', 't1105-ingress-tool-transfer',
  't1562-shift-system-clock', 't1059-004-unix-shell', 't1611-escape-to-host', 't1055-008-ptrace-system-calls', 't1083-file-and-directory-discovery',
];
/** The run's id: in a cluster bpfgate did not assemble its objects are prefixed with it, and the namespaced policy went to its namespace. */
const RUN = 'bpfgate-8a07a9';

const { policies } = await readPolicies(FILES);
const subjects = policySubjects(policies);
const plan: TetragonPlan = {
  bundle: undefined,
  policies,
  subjects: policies.map((p) => subjects.get(p)!),
  names: agentNames(policies).map((n) => `${RUN}-${n}`),
  namespaces: policies.map((p) => (p.kind === 'TracingPolicyNamespaced' ? RUN : undefined)),
  bootOf: policies.map(() => 0),
  bootCount: 1,
};
const triggers = (await loadTriggerCatalogue()).filter((t) => TRIGGERS.includes(t.id));
const x86 = nodeEvidence('kubeconfig-12-policies/node-127.0.25.126', '127.0.25.126', 'x86_64', false);
const arm64 = nodeEvidence('kubeconfig-12-policies/node-127.0.192.101', '127.0.192.101', 'arm64', false);
const loads = (report: typeof x86.report) => Object.fromEntries(judgeLoads(plan, 0, report, 0, CLUSTER_CHECKS).map((c) => [c.subject, c.reason ?? c.status]));

describe('each node\'s own load state of the same twelve policies', () => {
  it('finds every policy in both listings, the namespaced one in the run\'s namespace', () => {
    expect(plan.policies).toHaveLength(12);
    for (const node of [x86, arm64]) {
      expect(node.report.states).toHaveLength(12);
      expect(node.report.states.find((s) => s.name === `${RUN}-file-monitoring-filtered`)?.namespace).toBe(RUN);
    }
  });

  it('x86_64 6.12: every kprobe policy refused (v1.5.0 multi-kprobe vs the kernel\'s tail-call check), the LSM ones loaded', () => {
    const verdicts = loads(x86.report);
    expect(verdicts).toMatchObject({ lsm: 'pass', 'lsm-file-open': 'pass', connect: 'tailcall-attach-type', 'deny-nsenter': 'tailcall-attach-type', 'file-monitoring-filtered': 'tailcall-attach-type' });
    expect(Object.values(verdicts).filter((v) => v === 'tailcall-attach-type')).toHaveLength(10);
    const connect = judgeLoads(plan, 0, x86.report, 0, CLUSTER_CHECKS).find((c) => c.subject === 'connect')!;
    expect(String(connect.evidence.error)).toMatch(/bpf_multi_kprobe_v612\.o.*load program: invalid argument/);
  });

  it('arm64 16K 6.12: the kprobe policies load; only the __x64_sys_setns one is refused, having no such symbol', () => {
    const verdicts = loads(arm64.report);
    expect(Object.entries(verdicts).filter(([, v]) => v !== 'pass')).toEqual([['deny-nsenter', 'load-error']]);
    const nsenter = judgeLoads(plan, 0, arm64.report, 0, CLUSTER_CHECKS).find((c) => c.subject === 'deny-nsenter')!;
    expect(String(nsenter.evidence.error)).toContain('__x64_sys_setns');
  });
});

describe('the triggers on each node\'s stream', () => {
  const byKey = (checks: ReturnType<typeof judgeNode>) => new Map(checks.map((c) => [`${c.subject} ${c.check}`, c]));

  it('x86_64: the events owed by the two LSM policies arrive, every trigger pod named on its events', () => {
    const checks = byKey(judgeNode(plan, triggers, x86));
    expect(checks.get(`t1003-008-etc-passwd-and-shadow ${CLUSTER_CHECKS.events}`)).toMatchObject({ status: 'pass' });
    expect(checks.get(`t1046-network-service-discovery ${CLUSTER_CHECKS.events}`)).toMatchObject({ status: 'skip', reason: 'untested' });
    expect(x86.lost).toEqual({});
    for (const t of TRIGGERS) expect(checks.get(`${t} ${POD_METADATA_CHECK}`)?.status).toBe('pass');
    expect(checks.get(`t1611-escape-to-host ${POD_METADATA_CHECK}`)!.evidence.pod).toMatchObject({ namespace: RUN, labels: { 'bpfgate.dev/trigger': 't1611-escape-to-host' } });
  });

  it('arm64: the agent overflowed its gRPC listener, so the missing events are infra-events-lost, not the policies\' failures', () => {
    expect(arm64.lost).toEqual({ tetragon_notify_overflowed_events_total: 1474 });
    const checks = judgeNode(plan, triggers, arm64).filter((c) => c.check === CLUSTER_CHECKS.events);
    const lost = checks.filter((c) => c.reason === 'infra-events-lost');
    expect(lost.length).toBeGreaterThan(0);
    for (const c of lost) expect(c).toMatchObject({ status: 'error', evidence: { failureWithoutLoss: expect.stringMatching(/^(no-events|event-mismatch)$/) } });
    // Without the counters the same evidence would have failed the policies.
    const unexcused = judgeNode(plan, triggers, { ...arm64, lost: undefined }).filter((c) => c.check === CLUSTER_CHECKS.events);
    expect(unexcused.filter((c) => c.status === 'fail').map((c) => c.subject).sort()).toEqual(lost.map((c) => c.subject).sort());
    expect(checks.find((c) => c.subject === 't1046-network-service-discovery')).toMatchObject({ status: 'pass' });
  });
});
