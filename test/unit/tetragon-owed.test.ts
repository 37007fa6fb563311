/**
 * Which enabled hooks owe a trigger's expected event (suites/tetragon/owed.ts): a policy
 * that does not capture what an expectation looks at, or whose selectors or pod filter
 * keep the trigger out, owes nothing, and the trigger is `untested` for it, never a
 * mismatch. On the policies users wrote (test/fixtures/policies/lane-fidelity) and the
 * events a real v1.5.0 agent exported for them (test/fixtures/tetragon/README.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { readExport } from '../../suites/tetragon/events.js';
import { judgeTriggers, type AgentReport } from '../../suites/tetragon/judge.js';
import { parsePolicyList } from '../../suites/tetragon/load-state.js';
import { owes, type EnabledHook } from '../../suites/tetragon/owed.js';
import { agentNames, type TetragonPlan } from '../../suites/tetragon/plan.js';
import { selectorsReject } from '../../suites/tetragon/selectors.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { ExpectedEvent } from '../../suites/triggers/model.js';
import { EXAMPLES, PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon');
const POLICIES = join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'lane-fidelity');
const catalogue = await loadTriggerCatalogue();
const trigger = (id: string) => catalogue.find((t) => t.id === id)!;
const expectation = (id: string, fn: string) => trigger(id).expect.find((x) => 'function_name' in x && x.function_name === fn)!;

const hook = (key: string, spec: Record<string, unknown> | undefined, extra: Partial<EnabledHook> = {}): EnabledHook => ({ policy: 'p', key, spec, ...extra });
const dport = expectation('t1105-ingress-tool-transfer', 'tcp_connect');

describe('a hook owes an expectation only when it captures what the expectation looks at', () => {
  it('does not owe a destination port when it captures no argument, or no socket', () => {
    expect(owes(hook('kprobe:tcp_connect', { call: 'tcp_connect' }), dport, [], false)).toEqual({ owes: false, why: 'the expectation looks at args.sock_arg.dport; it captures no argument' });
    const file = owes(hook('kprobe:tcp_connect', { args: [{ index: 0, type: 'file' }] }), dport, [], false);
    expect(file).toEqual({ owes: false, why: 'the expectation looks at args.sock_arg.dport; its args export file_arg' });
    expect(owes(hook('kprobe:tcp_connect', { args: [{ index: 0, type: 'sock' }] }), dport, [], false)).toEqual({ owes: true, because: 'unfiltered' });
  });

  it('reads a predicate with an index at that position of the exported args, which follow the policy\'s args list', () => {
    const at1: ExpectedEvent = { type: 'process_kprobe', function_name: 'fd_install', args: [{ index: 1, path: 'file_arg.path', contains: 'x' }] };
    expect(owes(hook('kprobe:fd_install', { args: [{ index: 0, type: 'int' }, { index: 1, type: 'file' }] }), at1, [], false).owes).toBe(true);
    expect(owes(hook('kprobe:fd_install', { args: [{ index: 1, type: 'file' }] }), at1, [], false)).toMatchObject({ owes: false, why: expect.stringContaining('args[1].file_arg.path') });
    // A type bpfgate does not map may carry anything: owed.
    expect(owes(hook('kprobe:fd_install', { args: [{ index: 0, type: 'int' }, { index: 1, type: 'some_new_type' }] }), at1, [], false).owes).toBe(true);
  });

  it('owes an expectation without argument predicates whatever it captures; never an exec, which every agent exports', () => {
    const plain = expectation('t1046-network-service-discovery', 'security_socket_connect');
    expect(owes(hook('kprobe:security_socket_connect', undefined), plain, [], false).owes).toBe(true);
    expect(owes(hook('kprobe:security_socket_connect', undefined), { type: 'process_exec' }, [], false).owes).toBe(false);
  });
});

describe('selectors and pod filters that keep the trigger out', () => {
  const sock = { args: [{ index: 0, type: 'sock' }] };
  it('rejects a pinned port with the port operators, ranges included', () => {
    const other = { ...sock, selectors: [{ matchArgs: [{ index: 0, operator: 'DPort', values: ['443', '8000:8100'] }] }] };
    expect(selectorsReject(other, dport)).toBe('selectors[0]: matchArgs DPort ["443","8000:8100"] on args index 0 (sock) rejects 18105');
    expect(selectorsReject({ ...sock, selectors: [{ matchArgs: [{ index: 0, operator: 'DPort', values: ['18000:18200'] }] }] }, dport)).toBeUndefined();
    expect(selectorsReject({ ...sock, selectors: [{ matchArgs: [{ index: 0, operator: 'NotDPort', values: ['18105'] }] }] }, dport)).toMatch(/NotDPort/);
    // Selectors are alternatives: one that may pass is enough.
    expect(selectorsReject({ ...sock, selectors: [...other.selectors, { matchArgs: [{ index: 0, operator: 'SPort', values: ['1'] }] }] }, dport)).toBeUndefined();
  });

  it('rejects a pinned binary with matchBinaries, unless children of other binaries may match', () => {
    const shadow = expectation('t1003-008-etc-passwd-and-shadow', 'file_open');
    expect(shadow.binary).toBe('/usr/bin/cat');
    const vi = { args: [{ index: 0, type: 'file' }], selectors: [{ matchBinaries: [{ operator: 'In', values: ['/usr/bin/vi'] }] }] };
    expect(selectorsReject(vi, shadow)).toBe('selectors[0]: matchBinaries In ["/usr/bin/vi"] rejects /usr/bin/cat');
    expect(selectorsReject({ ...vi, selectors: [{ matchBinaries: [{ operator: 'NotIn', values: ['/usr/bin/vi'] }] }] }, shadow)).toBeUndefined();
    expect(selectorsReject({ ...vi, selectors: [{ matchBinaries: [{ operator: 'In', values: ['/usr/bin/vi'], followChildren: true }] }] }, shadow)).toBeUndefined();
  });

  it('rejects what a NoPost selector would have exported, and an integer Equal that differs', () => {
    expect(selectorsReject({ ...sock, selectors: [{ matchActions: [{ action: 'NoPost' }] }] }, dport)).toBe('selectors[0]: its action NoPost exports no event');
    const setuid: ExpectedEvent = { type: 'process_kprobe', function_name: 'sys_setuid', args: [{ index: 0, path: 'int_arg', equals: 0 }] };
    expect(selectorsReject({ args: [{ index: 0, type: 'int' }], selectors: [{ matchArgs: [{ index: 0, operator: 'Equal', values: ['1000'] }] }] }, setuid)).toMatch(/rejects 0/);
    expect(selectorsReject({ args: [{ index: 0, type: 'int' }], selectors: [{ matchArgs: [{ index: 0, operator: 'Equal', values: ['0'] }] }] }, setuid)).toBeUndefined();
  });

  it('owes nothing from a policy that sees only pods when the trigger runs in none; in a cluster, a label selector needs an event that came through', () => {
    const unfiltered = { args: [{ index: 0, type: 'sock' }] };
    expect(owes(hook('kprobe:tcp_connect', unfiltered, { pods: 'labels' }), dport, [], false)).toMatchObject({ owes: false, why: expect.stringContaining('runs in no pod') });
    expect(owes(hook('kprobe:tcp_connect', unfiltered, { pods: 'namespace' }), dport, [], true)).toEqual({ owes: true, because: 'unfiltered' });
    expect(owes(hook('kprobe:tcp_connect', unfiltered, { pods: 'labels' }), dport, [], true)).toMatchObject({ owes: false });
  });
});

describe('a real agent with a policy that hooks tcp_connect without capturing the socket', async () => {
  const { policies } = await readPolicies([join(POLICIES, 'connect-without-args.yaml'), join(POLICIES, 'listen-with-sock.yaml')]);
  const plan: TetragonPlan = { bundle: undefined, policies, subjects: policies.map((p) => p.name), names: agentNames(policies), bootOf: policies.map(() => 0), bootCount: 1 };
  // The run before the rule: its events (marker-filtered in the guest) and its listing.
  const report: AgentReport = {
    ready: true, alive: true, agentLog: '', tetraStderr: '',
    states: parsePolicyList(readFileSync(join(FIXTURES, 'x86_64-6.12-lane-fidelity-before.tp-list.json'), 'utf8')),
    events: readExport(readFileSync(join(FIXTURES, 'x86_64-6.12-lane-fidelity-before.events.jsonl'), 'utf8'), 'before', { tolerant: true }).events,
  };
  const [t1046] = judgeTriggers(plan, [trigger('t1046-network-service-discovery')], [report], 'x86_64');

  it('has the events a destination-port expectation was judged on, without a socket argument', () => {
    const connects = report.events.filter((e) => e.function_name === 'tcp_connect');
    expect(connects.length).toBeGreaterThan(0);
    expect(connects.every((e) => e.policy_name === 'fidelity-connect-without-args' && (e.args ?? []).length === 0)).toBe(true);
  });

  it('leaves t1046 untested, not event-mismatch, and says why for each expectation', () => {
    expect(t1046).toMatchObject({ subject: 't1046-network-service-discovery', status: 'skip', reason: 'untested' });
    expect(t1046!.evidence.notOwed).toEqual([
      { expected: expectation('t1046-network-service-discovery', 'tcp_connect'), notOwedBy: [{ policy: 'fidelity-connect-without-args', hook: 'kprobe:tcp_connect', why: 'the expectation looks at args.sock_arg.dport; it captures no argument' }] },
      { expected: expectation('t1046-network-service-discovery', 'security_socket_connect'), why: 'no enabled policy watches it' },
    ]);
  });

  it('still owes it where a policy captures the socket, and judges it on that policy\'s events only', async () => {
    const { policies: withSock } = await readPolicies([join(EXAMPLES, 'tcp-connect.yaml'), join(POLICIES, 'connect-without-args.yaml')]);
    const both: TetragonPlan = { bundle: undefined, policies: withSock, subjects: withSock.map((p) => p.name), names: agentNames(withSock), bootOf: [0, 0], bootCount: 1 };
    const enabled: AgentReport = { ...report, states: parsePolicyList(JSON.stringify({ policies: both.names.map((name) => ({ name, state: 'TP_STATE_ENABLED', sensors: ['generic_kprobe'] })) })) };
    const [check] = judgeTriggers(both, [trigger('t1046-network-service-discovery')], [enabled], 'x86_64');
    // Only the socket-less policy's events exist: the owed expectation finds no event of the policy that owes it.
    expect(check).toMatchObject({ status: 'fail', reason: 'event-mismatch', evidence: { owedBy: { 'expect[0] process_kprobe tcp_connect': ['connect'] } } });
    expect((check!.evidence.unmatched as { nearest: unknown }[])[0]!.nearest).toBeNull();
  });
});
