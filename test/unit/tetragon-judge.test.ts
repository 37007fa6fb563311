/**
 * Judging the tetragon lane without a guest: the load states, triggers and fired
 * policies of two real agent runs (test/fixtures/tetragon/README.md), through the same
 * pure functions a QEMU guest's and a cluster node's reports go through.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { readExport } from '../../suites/tetragon/events.js';
import { judgeAdd, judgeAgent, judgeLoads, judgeTriggers, type AgentReport } from '../../suites/tetragon/judge.js';
import { parsePolicyList } from '../../suites/tetragon/load-state.js';
import { agentNames, type TetragonPlan } from '../../suites/tetragon/plan.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { Trigger } from '../../suites/triggers/model.js';
import { EXAMPLES, PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
/** The triggers those runs ran. */
const RAN = ['t1003-008-etc-passwd-and-shadow', 't1046-network-service-discovery', 't1548-001-setuid-and-setgid'];

async function planOf(files: string[]): Promise<TetragonPlan> {
  const { policies } = await readPolicies(files.map((f) => join(EXAMPLES, f)));
  return { bundle: undefined, policies, subjects: policies.map((p) => p.name), names: agentNames(policies), bootOf: policies.map(() => 0), bootCount: 1 };
}

function reportOf(run: string): AgentReport {
  return {
    ready: true,
    alive: true,
    states: parsePolicyList(fixture(`x86_64-6.12-${run}.tp-list.json`)),
    events: readExport(fixture(`x86_64-6.12-${run}.events.jsonl`), run, { tolerant: true }).events,
    agentLog: '',
    tetraStderr: '',
  };
}

const triggers: Trigger[] = (await loadTriggerCatalogue()).filter((t) => RAN.includes(t.id));
const byId = (checks: ReturnType<typeof judgeTriggers>) => new Map(checks.map((c) => [`${c.subject} ${c.check}`, c]));

describe('a real agent with two kprobe policies loaded (--disable-kprobe-multi)', async () => {
  const plan = await planOf(['sys_setuid.yaml', 'tcp-connect.yaml']);
  const report = reportOf('kprobes-no-multi');
  const checks = byId(judgeTriggers(plan, triggers, [report], 'x86_64'));

  it('passes each policy the agent enabled', () => {
    expect(judgeLoads(plan, 0, report, 0).map((c) => [c.subject, c.status, c.reason])).toEqual([
      ['syscalls', 'pass', null],
      ['connect', 'pass', null],
    ]);
  });

  it('matches the triggers the policies hook against the events carrying their marker', () => {
    expect(checks.get('t1046-network-service-discovery tetragon:events')).toMatchObject({ status: 'pass', reason: null });
    expect(checks.get('t1548-001-setuid-and-setgid tetragon:events')).toMatchObject({ status: 'pass', reason: null });
    // Only tcp_connect is owed: no enabled policy hooks security_socket_connect, the trigger's other expectation.
    expect(checks.get('t1046-network-service-discovery tetragon:events')!.evidence.matched).toBe(1);
  });

  it('backs each enabled policy with the events that came through it', () => {
    for (const policy of ['syscalls', 'connect']) {
      const fired = checks.get(`${policy} tetragon:fired`)!;
      expect(fired.status).toBe('pass');
      expect(fired.evidence.events).toBeGreaterThan(0);
    }
  });

  it('fails an expectation no event meets, naming the nearest event and how it differs', () => {
    const net = triggers.find((t) => t.id === 't1046-network-service-discovery')!;
    const wrongPort = JSON.parse(JSON.stringify(net).replace('"equals":3306', '"equals":3307')) as Trigger;
    expect(JSON.stringify(wrongPort)).not.toBe(JSON.stringify(net));
    const [check] = judgeTriggers(plan, [wrongPort], [report], 'x86_64');
    expect(check).toMatchObject({ subject: net.id, status: 'fail', reason: 'event-mismatch' });
    const unmatched = check!.evidence.unmatched as { nearest: string | null; differences?: string[] }[];
    expect(unmatched[0]!.nearest).toContain('tcp_connect');
    expect(unmatched[0]!.differences?.join(' ')).toMatch(/dport/);
  });

  it('says no-events when an owed trigger left no event at all', () => {
    const setuid = triggers.find((t) => t.id === 't1548-001-setuid-and-setgid')!;
    const [check] = judgeTriggers(plan, [{ ...setuid, marker: 'bpfgate-marker-nobody-used' }], [report], 'x86_64');
    expect(check).toMatchObject({ status: 'fail', reason: 'no-events' });
  });
});

describe('a real agent that enabled the LSM policy and refused the kprobe ones (multi-kprobe on 6.12)', async () => {
  const plan = await planOf(['lsm_file_open.yaml', 'sys_setuid.yaml', 'tcp-connect.yaml']);
  const report = reportOf('lsm-file-open');

  it('fails the refused policies with the agent\'s own error', () => {
    const loads = judgeLoads(plan, 0, report, 0);
    expect(loads.map((c) => [c.subject, c.status, c.reason])).toEqual([
      ['lsm-file-open', 'pass', null],
      ['syscalls', 'fail', 'tailcall-attach-type'],
      ['connect', 'fail', 'tailcall-attach-type'],
    ]);
    expect(String(loads[1]!.evidence.error)).toContain('bpf_multi_kprobe_v612.o');
  });

  it('does not owe a hook of a refused policy: the network trigger is untested, the LSM one passes', () => {
    const checks = byId(judgeTriggers(plan, triggers, [report], 'x86_64'));
    expect(checks.get('t1003-008-etc-passwd-and-shadow tetragon:events')).toMatchObject({ status: 'pass' });
    expect(checks.get('t1046-network-service-discovery tetragon:events')).toMatchObject({ status: 'skip', reason: 'untested' });
    expect(checks.get('lsm-file-open tetragon:fired')?.status).toBe('pass');
    expect(checks.has('syscalls tetragon:fired')).toBe(false);
  });

  it('turns a refusal at add time into the policy\'s verdict at once, and a budget cut into the machine\'s', () => {
    const [, refusal] = fixture('x86_64-6.12-lsm-file-open.tp-add.txt').trim().split('\n').map((l) => l.split('\t'));
    // The multi-kprobe object refused by the kernel's tail-call attach-type check: that reason, not a bare load-error.
    expect(judgeAdd(plan, { policy: 1, rc: '1', output: refusal![1]!, at: '40.1' }, 0)).toMatchObject({ subject: 'syscalls', status: 'fail', reason: 'tailcall-attach-type' });
    expect(judgeAdd(plan, { policy: 1, rc: '1', output: 'Error: failed to add tracing policy: policyfilter is disabled', at: '40.1' }, 0)).toMatchObject({ reason: 'load-error' });
    expect(judgeAdd(plan, { policy: 0, rc: '0', output: 'added', at: '20.0' }, 0)).toBeUndefined();
    expect(judgeAdd(plan, { policy: 2, rc: 'budget', output: '', at: '361.0' }, 0)).toMatchObject({ status: 'error', reason: 'infra-boot-timeout' });
  });
});

describe('an agent that never got ready', async () => {
  const plan = await planOf(['lsm_file_open.yaml']);
  const log = 'level=info msg="Starting tetragon"\nlevel=fatal msg="Failed to start tetragon" error="creating perf ring buffer: invalid argument"\n';
  const report: AgentReport = { ready: false, alive: false, states: [], events: [], agentLog: log, tetraStderr: 'connection refused' };

  it('fails the agent, every policy and every trigger with its own error lines', () => {
    expect(judgeAgent(plan, 0, report)).toMatchObject([{ subject: 'tetragon', check: 'tetragon:agent', status: 'fail', reason: 'load-error' }]);
    expect(judgeLoads(plan, 0, report, 0)[0]).toMatchObject({ status: 'fail', reason: 'load-error', evidence: { agentAlive: false, tetra: 'connection refused' } });
    const events = judgeTriggers(plan, triggers, [report], 'x86_64');
    expect(events).toHaveLength(triggers.length);
    for (const c of events) expect(c).toMatchObject({ status: 'fail', reason: 'load-error', evidence: { agentErrors: [expect.stringContaining('invalid argument')] } });
  });
});

describe('an agent that answered while a policy was still loading (328 single kprobes under TCG)', async () => {
  const plan = await planOf(['list-syscalls-generated.yaml']);
  // The real listing at the end of the settle wait: the agent had answered, the policy was still loading.
  const states = parsePolicyList(fixture('x86_64-6.12-generated-syscalls-loading.tp-list.json'));
  const answered: AgentReport = { ready: true, alive: true, states, events: [], agentLog: '', tetraStderr: '', waitedS: 371 };

  it('charges the policy to the machine (infra-boot-timeout), not to the policy, and the agent is not failed', () => {
    expect(states.map((s) => s.state)).toEqual(['TP_STATE_LOADING']);
    expect(judgeLoads(plan, 0, answered, 0)).toMatchObject([{ subject: 'all-syscalls-for-kill', status: 'error', reason: 'infra-boot-timeout', evidence: { state: 'TP_STATE_LOADING', ready: true } }]);
    expect(judgeAgent(plan, 0, answered)).toEqual([]);
  });

  it('judges the triggers on their own, never as a load error: an exec is owed by the agent itself, the rest by no enabled policy', () => {
    const events = judgeTriggers(plan, triggers, [answered], 'x86_64');
    expect(events).toHaveLength(triggers.length);
    for (const c of events) {
      const execs = triggers.find((t) => t.id === c.subject)!.expect.some((x) => x.type === 'process_exec');
      // This report carries no events: an owed exec is missing, anything else is not owed.
      expect(c).toMatchObject(execs ? { status: 'fail', reason: 'no-events' } : { status: 'skip', reason: 'untested' });
    }
  });

  it('still fails everything as a load error when the agent never answered a listing', () => {
    const silent: AgentReport = { ...answered, ready: false, states: [] };
    expect(judgeLoads(plan, 0, silent, 0)).toMatchObject([{ status: 'fail', reason: 'load-error' }]);
    expect(judgeAgent(plan, 0, silent)).toMatchObject([{ check: 'tetragon:agent', status: 'fail' }]);
  });
});
