/**
 * Where the tetragon lanes disagreed with a real agent and the lane was wrong (issue 12),
 * on policies users wrote (test/fixtures/policies/lane-fidelity) and what a real v1.5.0
 * agent said of them on x86_64-6.12 (test/fixtures/tetragon/README.md: the run before the
 * fixes, `lane-fidelity-before.*`, and after, `lane-fidelity.*`):
 * - a cluster-scoped policy with metadata.namespace is applied as kubectl applies it;
 * - a policy that needs the policy filter gets an agent that has it;
 * - a trigger's helper processes (t1105's `nc`) are tied to it by the process tree;
 * - an enabled policy that attached nothing does not pass (the agent's per-hook words).
 * (Expectations a policy cannot produce: tetragon-owed.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { TRIGGER_LABEL } from '../../suites/cluster/judge.js';
import { readExport } from '../../suites/tetragon/events.js';
import { judgeAdd, judgeLoads, judgeTriggers, type AgentReport } from '../../suites/tetragon/judge.js';
import { hookAttachment, listedHookStatuses, loggedHooks, parsePolicyList, withHooks } from '../../suites/tetragon/load-state.js';
import { markerOf, tieToTriggers } from '../../suites/tetragon/match.js';
import { agentFlags, agentNames, appliedNamespace, asApplied, needsPolicyFilter, podScope, type TetragonPlan } from '../../suites/tetragon/plan.js';
import { triggerPids } from '../../suites/tetragon/qemu.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { EVENTS, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon');
const fixture = (name: string) => readFileSync(join(FIXTURES, `x86_64-6.12-lane-fidelity${name}`), 'utf8');
const POLICIES = join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'lane-fidelity');
const AWK = join(PROJECT_ROOT, 'suites', 'tetragon', 'guest', 'tied-events.awk');
const RAN = ['t1046-network-service-discovery', 't1105-ingress-tool-transfer'];

const triggers = (await loadTriggerCatalogue()).filter((t) => RAN.includes(t.id));
const markers = triggers.map((t) => t.marker);
const t1105 = triggers.find((t) => t.id === 't1105-ingress-tool-transfer')!;
// The guest adds policy files in name order: the plan's order.
const { policies } = await readPolicies([POLICIES]);
const plan: TetragonPlan = { bundle: undefined, policies, subjects: policies.map((p) => p.name), names: agentNames(policies), bootOf: policies.map(() => 0), bootCount: 1 };
const byName = (name: string) => policies.find((p) => p.name === name)!;

const after: AgentReport = {
  ready: true, alive: true, agentLog: '', tetraStderr: '',
  states: parsePolicyList(fixture('.tp-list.json')),
  events: readExport(fixture('.events.jsonl'), 'after', { tolerant: true }).events,
  hookLog: fixture('.hook-log.txt'),
  roots: { pids: triggerPids(fixture('.trigger-pids.txt')) },
};

describe('a cluster-scoped policy that carries metadata.namespace', () => {
  const policy = byName('fidelity-cluster-scoped-namespace');

  it('was refused by the agent when handed the namespace as written', () => {
    const [, refusal] = fixture('-before.tp-add.txt').split('\n').map((l) => l.split('\t')).find(([header]) => header === 'file=001-001.yaml rc=1')!;
    expect(refusal).toContain('metadata.namespace: Forbidden: not allowed on this type');
    expect(judgeAdd(plan, { policy: policies.indexOf(policy), rc: '1', output: refusal!, at: '113.52' }, 0)).toMatchObject({ status: 'fail', reason: 'load-error' });
  });

  it('goes to the agent without it, as kubectl applies it, and is judged by the agent\'s cluster-wide state', () => {
    expect(policy.namespace).toBe('kube-system');
    expect(appliedNamespace(policy)).toBeUndefined();
    const doc = asApplied(policy, 'renamed') as { metadata: Record<string, unknown>; spec: unknown };
    expect(doc.metadata).toEqual({ name: 'renamed' });
    expect(doc.spec).toEqual(policy.doc.spec);
    const load = judgeLoads(plan, 0, after, 0).find((c) => c.subject === policy.name);
    expect(load).toMatchObject({ status: 'pass', evidence: { state: 'TP_STATE_ENABLED' } });
  });

  it('keeps a namespaced policy in its namespace, or in default when it names none', async () => {
    const { policies: [namespaced] } = await readPolicies([join(EXTRA, 'examples/quickstart/file_monitoring_enforce.yaml')]);
    expect(namespaced!.kind).toBe('TracingPolicyNamespaced');
    expect(appliedNamespace(namespaced!)).toBe(namespaced!.namespace ?? 'default');
    expect((asApplied(namespaced!, 'n') as { metadata: { namespace?: string } }).metadata.namespace).toBe(namespaced!.namespace ?? 'default');
  });
});

describe('a policy that needs the agent\'s policy filter', () => {
  const selector = byName('fidelity-pod-selector');

  it('was refused by an agent without it', () => {
    expect(fixture('-before.tp-add.txt')).toContain('file=004-004.yaml rc=1\tError: failed to add tracing policy: rpc error: code = Unknown desc = policyfilter is disabled');
  });

  it('gets the filter for a podSelector or containerSelector with a label or an expression, as v1.5.0 decides it', () => {
    expect(podScope(selector)).toBe('labels');
    expect(agentFlags([selector], ['--disable-kprobe-multi'])).toEqual(['--disable-kprobe-multi', '--enable-policy-filter']);
    const withSpec = (spec: Record<string, unknown>) => ({ ...selector, doc: { ...selector.doc, spec: { ...spec, kprobes: [] } } });
    expect(needsPolicyFilter(withSpec({ containerSelector: { matchExpressions: [{ key: 'name', operator: 'In', values: ['main'] }] } }))).toBe(true);
    // An empty selector selects everything: v1.5.0 does not filter, and needs no filter.
    expect(needsPolicyFilter(withSpec({ podSelector: {} }))).toBe(false);
    expect(needsPolicyFilter(withSpec({ podSelector: { matchLabels: {} } }))).toBe(false);
    expect(agentFlags(policies.filter((p) => !needsPolicyFilter(p)), [])).toEqual([]);
    // The user's own word on the filter stands.
    expect(agentFlags([selector], ['--enable-policy-filter=false'])).toEqual(['--enable-policy-filter=false']);
  });

  it('loads with it, with the filter id the agent gave it', () => {
    const load = judgeLoads(plan, 0, after, 0).find((c) => c.subject === selector.name);
    expect(load).toMatchObject({ status: 'pass', evidence: { state: 'TP_STATE_ENABLED' } });
    expect(after.states.find((s) => s.name === selector.name)!.raw.filter_id).toBe('5');
  });
});

describe('a trigger\'s helper whose argv names no marker (t1105\'s nc)', () => {
  const helper = (e: { process?: { arguments: string } }) => /^(-l -p 18105|127\.0\.0\.1 18105)$/.test(e.process?.arguments ?? '');

  it('has its events in the export, none of them carrying the marker', () => {
    const helpers = after.events.filter(helper);
    expect(helpers.map((e) => e.function_name).filter(Boolean).sort()).toEqual(['inet_csk_accept', 'inet_csk_listen_start', 'tcp_close', 'tcp_connect', 'tcp_connect']);
    expect(helpers.every((e) => markerOf(e, markers) === undefined)).toBe(true);
  });

  it('is tied to its trigger through the process tree, from the pid the trigger\'s steps ran as', () => {
    const tied = tieToTriggers(after.events, markers, after.roots);
    const mine = tied.get(t1105.marker)!;
    expect(mine.filter(helper).length).toBe(after.events.filter(helper).length);
    // Every event of the export is one trigger's: the guest sent only those.
    expect([...tied.values()].flat().length).toBe(after.events.length);
    // Without the roots, only the marker's text is left, and the helper's events are lost.
    const byText = tieToTriggers(after.events, markers);
    expect((byText.get(t1105.marker) ?? []).filter(helper)).toEqual([]);
  });

  it('meets the listener expectation of t1105, which the run before the fix lost', () => {
    const [check] = judgeTriggers(plan, [t1105], [after], 'x86_64');
    expect(check).toMatchObject({ status: 'pass', evidence: { owedBy: { 'expect[1] process_kprobe inet_csk_listen_start': ['fidelity-listen-with-sock'] } } });
    // The sample is what matched: the helper's listen, by its own argv.
    expect((check!.evidence.sample as string[]).find((e) => e.includes('inet_csk_listen_start'))).toContain('"-l -p 18105"');
    const before: AgentReport = { ...after, states: parsePolicyList(fixture('-before.tp-list.json')), events: readExport(fixture('-before.events.jsonl'), 'before').events, roots: {} };
    const [lost] = judgeTriggers(plan, [t1105], [before], 'x86_64');
    expect(lost).toMatchObject({ status: 'fail', reason: 'event-mismatch', evidence: { unmatched: [{ nearest: null }] } });
  });

  it('is let through by the guest\'s filter, which keeps exactly the lines the trigger trees and markers tie', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfgate-tied-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    // The run's own lines, among real events of other machines' processes.
    const others = readFileSync(join(EVENTS, 'security-observability-book', 'book-events.jsonl'), 'utf8');
    writeFileSync(join(dir, 'export'), fixture('.events.jsonl') + others);
    writeFileSync(join(dir, 'pids'), fixture('.trigger-pids.txt'));
    writeFileSync(join(dir, 'nopids'), '');
    writeFileSync(join(dir, 'markers'), `${markers.join('\n')}\n`);
    const awk = (pids: string) => {
      const r = spawnSync('/bin/busybox', ['awk', '-v', `pids=${join(dir, pids)}`, '-v', `markers=${join(dir, 'markers')}`, '-f', AWK, join(dir, 'export'), join(dir, 'export')], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout;
    };
    expect(awk('pids')).toBe(fixture('.events.jsonl'));
    // Without the roots: the lines that carry a marker, as grep -F would keep them.
    const marked = fixture('.events.jsonl').split('\n').filter((l) => markers.some((m) => l.includes(m)));
    expect(awk('nopids')).toBe(`${marked.join('\n')}\n`);
    expect(marked.length).toBeLessThan(after.events.length);
  });

  it('reads the roots the guest sends', () => {
    expect([...triggerPids(fixture('.trigger-pids.txt')).values()]).toEqual(markers);
    expect(triggerPids('12 m\n\nnot-a-pid x\n')).toEqual(new Map([[12, 'm']]));
  });

  it('ties a cluster\'s events by the trigger pod\'s label, markers or not', () => {
    const events = readExport(readFileSync(join(PROJECT_ROOT, 'test/fixtures/cluster/kubeconfig-12-policies/node-127.0.25.126/agent-events.jsonl'), 'utf8'), 'cluster').events;
    const labelled = events.filter((e) => e.process?.pod?.pod_labels?.[TRIGGER_LABEL] === 't1046-network-service-discovery');
    expect(labelled.length).toBeGreaterThan(0);
    const roots = { podLabel: { key: TRIGGER_LABEL, markerOf: new Map([['t1046-network-service-discovery', 'any-marker']]) } };
    expect(tieToTriggers(events, [], roots).get('any-marker')).toEqual(labelled);
  });
});

describe('the agent\'s word on single hooks', () => {
  const loads = new Map(judgeLoads(plan, 0, after, 0).map((c) => [c.subject, c]));

  it('reads the calls v1.5.0 skipped from its log, by policy', () => {
    expect(loggedHooks(fixture('.hook-log.txt')).get('fidelity-calls-not-found')).toEqual({
      statuses: [{ section: 'kprobes', hook: 'bpfgate_no_such_function', state: 'call-not-found', from: 'log', index: 0 }],
      warnings: [],
    });
  });

  it('fails an enabled policy that attached none of its hooks, with the agent\'s words', () => {
    const state = after.states.find((s) => s.name === 'fidelity-calls-not-found')!;
    expect(state).toMatchObject({ state: 'TP_STATE_ENABLED' });
    expect(state.raw.sensors).toBeUndefined();
    expect(loads.get('fidelity-calls-not-found')).toMatchObject({
      status: 'fail',
      reason: 'symbol-missing',
      evidence: { attached: 'none of its 1 hooks (the agent lists no sensor for it)', hookStatuses: [{ hook: 'bpfgate_no_such_function', state: 'call-not-found', asked: true }] },
    });
    // The run before only had the listing: enabled, and a pass.
    const before = parsePolicyList(fixture('-before.tp-list.json')).find((s) => s.name === 'fidelity-calls-not-found')!;
    expect(before.state).toBe('TP_STATE_ENABLED');
    // Without the log's words, no sensor still means nothing attached.
    const policy = byName('fidelity-calls-not-found');
    expect(withHooks({ status: 'pass', reason: null }, before, hookAttachment(policy, before, undefined))).toEqual({ status: 'fail', reason: 'partially-enabled' });
  });

  it('passes a policy whose skipped call it asked to skip, with the skip as evidence', () => {
    expect(loads.get('fidelity-some-calls-not-found')).toMatchObject({
      status: 'pass',
      evidence: { hookStatuses: [{ hook: 'bpfgate_no_such_function_either', state: 'call-not-found', asked: true }] },
    });
    expect(loads.get('fidelity-some-calls-not-found')!.evidence.attached).toBeUndefined();
  });

  it('reads hook_statuses where the agent lists them, and fails only the hooks the policy did not ask to skip', () => {
    // The shape of TracingPolicyStatus.hook_statuses (api/v1/tetragon/sensors.proto after
    // v1.6) as protojson prints it: hook_idx 0 and unset fields are left out.
    const listing = (name: string, state: string, hooks: object[]) => parsePolicyList(JSON.stringify({ policies: [{ name, sensors: ['generic_kprobe'], state, hook_statuses: hooks }] }))[0]!;
    const some = byName('fidelity-some-calls-not-found');
    const partial = listing(some.name, 'TP_STATE_PARTIALLY_ENABLED', [
      { section: 'kprobes', state: 'STATUS_LOADED', hook_description: 'inet_csk_accept' },
      { section: 'kprobes', state: 'STATUS_CALL_NOT_FOUND', hook_description: 'bpfgate_no_such_function_either', hook_idx: 1 },
    ]);
    expect(listedHookStatuses(partial)!.map((h) => [h.index, h.state])).toEqual([[0, 'loaded'], [1, 'call-not-found']]);
    const verdict = (state: typeof partial) => withHooks({ status: state.state === 'TP_STATE_ENABLED' ? 'pass' : 'fail', reason: state.state === 'TP_STATE_ENABLED' ? null : 'partially-enabled' }, state, hookAttachment(some, state, undefined));
    // Asked for (ignore.callNotFound on kprobes[1]): evidence only.
    expect(verdict(partial)).toEqual({ status: 'pass', reason: null });
    // The same skip on kprobes[0], which did not ask for it: partially enabled.
    const unasked = listing(some.name, 'TP_STATE_PARTIALLY_ENABLED', [
      { section: 'kprobes', state: 'STATUS_CALL_NOT_FOUND', hook_description: 'inet_csk_accept' },
      { section: 'kprobes', state: 'STATUS_LOADED', hook_description: 'bpfgate_no_such_function_either', hook_idx: 1 },
    ]);
    expect(verdict(unasked)).toEqual({ status: 'fail', reason: 'partially-enabled' });
    // Nothing loaded, every call missing: symbol-missing.
    const none = listing(some.name, 'TP_STATE_PARTIALLY_ENABLED', [
      { section: 'kprobes', state: 'STATUS_CALL_NOT_FOUND', hook_description: 'inet_csk_accept' },
      { section: 'kprobes', state: 'STATUS_CALL_NOT_FOUND', hook_description: 'bpfgate_no_such_function_either', hook_idx: 1 },
    ]);
    expect(verdict(none)).toEqual({ status: 'fail', reason: 'symbol-missing' });
  });

  it('keeps the loader\'s warnings on a policy as evidence, from a real cluster node\'s log', () => {
    const log = readFileSync(join(PROJECT_ROOT, 'test/fixtures/cluster/kubeconfig-12-policies/node-127.0.25.126/agent.log'), 'utf8');
    const connect = loggedHooks(log).get('bpfgate-8a07a9-connect');
    expect(connect).toEqual({ statuses: [], warnings: ['kprobe spec pre-validation issued a warning, but will continue with loading: validation warning: type (size_t) of argument 2 does not match spec type (int)'] });
  });
});
