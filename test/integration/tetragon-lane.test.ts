/**
 * The tetragon-vm lane. Without a bundle its checks are skips that say so and the
 * rest of the run is untouched. With a real Tetragon release bundle (set
 * BPFGATE_TETRAGON_BUNDLE to a tetragon-vX.Y.Z-amd64 tarball or directory) the agent
 * runs in an x86_64 guest and the events of real triggers are asserted.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfgate, readResults, tempOut } from '../support/cli.js';
import { CRD_DIR, EXAMPLES, PROJECT_ROOT } from '../support/shared.js';

const BUNDLE = process.env.BPFGATE_TETRAGON_BUNDLE;
const CATALOGUE = join(PROJECT_ROOT, 'suites', 'triggers', 'catalogue');

/** The lane with the bundle on x86_64-6.12 (single kprobes, so kprobe policies load), and a finder for its checks. */
async function runLane(prefix: string, boots: number, policies: string, triggers: string[]) {
  const out = tempOut(prefix);
  await bpfgate([
    'run', '--suite', 'tetragon', '--tetragon', BUNDLE!, '--tetragon-args', '--disable-kprobe-multi', '--tetragon-boots', String(boots), '--cells', 'x86_64-6.12',
    '--schema', CRD_DIR, '--policies', policies,
    '--triggers', triggers.map((t) => join(CATALOGUE, `${t}.yaml`)).join(','),
    '--out', out,
  ]);
  const results = readResults(out);
  return { results, check: (subject: string, name: string) => results.find((r) => r.subject === subject && r.check === name) };
}

describe('the tetragon-vm lane', () => {
  it('skips every policy with the reason when no bundle is given, and runs the other suites', async () => {
    const out = tempOut('tetragon-none');
    await bpfgate(['run', '--suite', 'static,tetragon', '--schema', CRD_DIR, '--policies', join(EXAMPLES, 'lsm_file_open.yaml'), '--cells', 'x86_64-6.12', '--out', out]);
    const results = readResults(out);
    const tetragon = results.filter((r) => r.lane === 'tetragon-vm');
    expect(tetragon).toHaveLength(1);
    expect(tetragon[0]).toMatchObject({ subject: 'lsm-file-open', status: 'skip' });
    expect(String(tetragon[0]!.evidence.why)).toContain('--tetragon');
    expect(results.find((r) => r.check === 'schema')?.status).toBe('pass');
  });

  it.skipIf(!BUNDLE || !existsSync(BUNDLE))(
    'loads policies into real agents over two boots and asserts the events of the triggers (needs BPFGATE_TETRAGON_BUNDLE)',
    async () => {
      // sys_setuid and sys_ptrace are both called `syscalls`: the agent takes the second under a numbered name.
      const policies = ['lsm_file_open.yaml', 'tcp-connect.yaml', 'sys_setuid.yaml', 'sys_ptrace.yaml'].map((f) => join(EXAMPLES, f)).join(',');
      const { results, check } = await runLane('tetragon', 2, policies, ['t1003-008-etc-passwd-and-shadow', 't1046-network-service-discovery']);
      expect(check('lsm-file-open', 'tetragon:load')).toMatchObject({ status: 'pass', evidence: { state: 'TP_STATE_ENABLED' } });
      expect(check('connect', 'tetragon:load')?.status).toBe('pass');
      expect(check('t1003-008-etc-passwd-and-shadow', 'tetragon:events')?.status).toBe('pass');
      expect(check('t1046-network-service-discovery', 'tetragon:events')?.status).toBe('pass');
      expect(JSON.stringify(check('connect', 'tetragon:fired')?.evidence)).toContain('tcp_connect');
      const loads = results.filter((r) => r.check === 'tetragon:load');
      expect(loads.filter((r) => r.subject.startsWith('syscalls')).map((r) => r.status)).toEqual(['pass', 'pass']);
      expect(loads.map((r) => r.evidence.agentName).filter(Boolean)).toEqual(['syscalls-2']);
      // Both boots loaded policies; the triggers' checks above were asserted on their events together.
      expect(new Set(loads.map((r) => r.evidence.boot))).toEqual(new Set([1, 2]));
      expect(results.filter((r) => r.check === 'boot').map((r) => r.status)).toEqual(['pass', 'pass']);
    },
    600_000,
  );

  it.skipIf(!BUNDLE || !existsSync(BUNDLE))(
    'runs users\' policies as the agent would in a cluster, ties helpers to their trigger, and owes only what a policy captures (needs BPFGATE_TETRAGON_BUNDLE)',
    async () => {
      // test/fixtures/policies/lane-fidelity: one policy per class of issue 12; one boot.
      const { check } = await runLane('tetragon-fidelity', 1, join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'lane-fidelity'), ['t1046-network-service-discovery', 't1105-ingress-tool-transfer']);
      // A cluster-scoped policy with a namespace, applied without it; a podSelector, with the policy filter.
      expect(check('fidelity-cluster-scoped-namespace', 'tetragon:load')).toMatchObject({ status: 'pass', evidence: { state: 'TP_STATE_ENABLED' } });
      expect(check('fidelity-pod-selector', 'tetragon:load')).toMatchObject({ status: 'pass', evidence: { state: 'TP_STATE_ENABLED' } });
      // tcp_connect without a socket argument owes no destination port: untested, not event-mismatch.
      expect(check('t1046-network-service-discovery', 'tetragon:events')).toMatchObject({ status: 'skip', reason: 'untested' });
      // t1105's listener is `nc -l`, whose argv has no marker: tied through the process tree.
      expect(check('t1105-ingress-tool-transfer', 'tetragon:events')).toMatchObject({ status: 'pass', evidence: { owedBy: { 'expect[1] process_kprobe inet_csk_listen_start': ['fidelity-listen-with-sock'] } } });
      expect(JSON.stringify(check('fidelity-listen-with-sock', 'tetragon:fired')?.evidence)).toContain('-l -p 18105');
      // Enabled with every hook skipped is no pass; a skip the policy asked for is evidence only.
      expect(check('fidelity-calls-not-found', 'tetragon:load')).toMatchObject({ status: 'fail', reason: 'symbol-missing', evidence: { state: 'TP_STATE_ENABLED', hookStatuses: [{ hook: 'bpfgate_no_such_function', state: 'call-not-found' }] } });
      expect(check('fidelity-some-calls-not-found', 'tetragon:load')).toMatchObject({ status: 'pass', evidence: { hookStatuses: [{ hook: 'bpfgate_no_such_function_either', asked: true }] } });
    },
    900_000,
  );
});
