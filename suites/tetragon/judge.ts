/**
 * Judging the tetragon lane, platform-free: from what an agent reported (its answers
 * to each policy add, its policy listing, its exported events, its log) to checks.
 * A QEMU guest's agent and a cluster node's agent report the same things, so both
 * lanes judge through here.
 *
 * - `tetragon:load` per policy: the agent's own state (enabled, load error, partially
 *   enabled) and its word on single hooks (an enabled policy that attached nothing is no
 *   pass), a refusal at add time with the agent's words, or the machine's fault when the
 *   load budget ran out;
 * - `tetragon:events` per trigger: the events tied to it (its process tree, its marker)
 *   against its `expect` list; an expectation no enabled hook can produce is not owed
 *   (owed.ts);
 * - `tetragon:fired` per enabled policy: the events that came through it.
 */
import type { CheckDraft } from '../../core/check.js';
import type { Arch } from '../../matrix/cell.js';
import type { Policy } from '../../policy/model.js';
import { hookSpec } from '../../policy/spec.js';
import { kprobeSymbol } from '../policies/targets.js';
import type { ExpectedEvent, Trigger } from '../triggers/model.js';
import { summarizeEvent, type TetragonEvent } from './events.js';
import { agentErrors, hookAttachment, loadErrorReason, loadVerdict, loggedHooks, withHooks, type PolicyLoadState } from './load-state.js';
import { findMatch, tieToTriggers, type TriggerRoots } from './match.js';
import { owes, watches, type EnabledHook } from './owed.js';
import { appliedNamespace, multiLinks, podScope, type TetragonPlan } from './plan.js';

/** The names of the lane's checks: `tetragon:*` in a QEMU guest, `cluster:*` on a cluster node. */
export interface CheckNames {
  load: string;
  events: string;
  fired: string;
  agent: string;
}

export const VM_CHECKS: CheckNames = { load: 'tetragon:load', events: 'tetragon:events', fired: 'tetragon:fired', agent: 'tetragon:agent' };

/** What one agent (one boot of a cell, or one cluster node) reported once its policies were added. */
export interface AgentReport {
  /** The agent answered its policy listing (a policy still loading then is judged so, on its own). */
  ready: boolean;
  /** The agent's process was still alive when listed. */
  alive: boolean;
  states: PolicyLoadState[];
  /** Exported events (those the guest tied to a trigger; a cluster: the whole stream). */
  events: TetragonEvent[];
  /** The tail of the agent's log. */
  agentLog: string;
  /** The lines of the agent's whole log about single hooks (load-state.ts loggedHooks); the tail's when absent. */
  hookLog?: string;
  /** What roots each trigger's process tree in these events, besides markers (match.ts tieToTriggers). */
  roots?: TriggerRoots;
  /** What tetra said on stderr when the listing failed. */
  tetraStderr: string;
  /** Seconds from the agent's start to the listing. */
  waitedS?: number;
}

/** One `tetra tracingpolicy add` answer. */
export interface AddAnswer {
  /** Index of the policy in the plan. */
  policy: number;
  /** tetra's exit status, or `budget` when the load budget ran out before the add. */
  rc: string;
  output: string;
  /** Guest uptime (seconds) when it answered. */
  at: string;
}

/**
 * A policy add's check, when the answer settles it: a refusal is final at once; a success
 * waits for the listing (which tells enabled from partially enabled); a policy the load
 * budget left out is charged to the infrastructure, not to the policy.
 */
export function judgeAdd(plan: TetragonPlan, answer: AddAnswer, durationMs: number, checks: CheckNames = VM_CHECKS): CheckDraft | undefined {
  const policy = plan.policies[answer.policy];
  if (!policy || answer.rc === '0') return undefined;
  // tetra gave up waiting, the agent did not: the listing says how the load ended.
  if (/DeadlineExceeded|context deadline exceeded/.test(answer.output)) return undefined;
  const base = { subject: plan.subjects[answer.policy]!, check: checks.load, durationMs, source: policy.source };
  const boot = plan.bootCount > 1 ? { boot: plan.bootOf[answer.policy]! + 1 } : {};
  if (answer.rc === 'budget') {
    return { ...base, status: 'error', reason: 'infra-boot-timeout', evidence: { why: `not added: the load budget ran out at ${answer.at} s of guest uptime`, agent: plan.bundle?.version, ...boot } };
  }
  const multi = multiLinks(policy, plan);
  return { ...base, status: 'fail', reason: loadErrorReason(answer.output), evidence: { agent: plan.bundle?.version, ...multi, tetraAdd: answer.output.trim().slice(0, 2000), at: answer.at, ...boot } };
}

/** The load checks of the policies of one boot, from that boot's agent report. */
export function judgeLoads(plan: TetragonPlan, boot: number, report: AgentReport, durationMs: number, checks: CheckNames = VM_CHECKS): CheckDraft[] {
  const logged = loggedHooks(report.hookLog ?? report.agentLog);
  return plan.policies.flatMap((p, i) => {
    if (plan.bootOf[i] !== boot) return [];
    const name = plan.names[i]!;
    const namespace = plan.namespaces ? plan.namespaces[i] : appliedNamespace(p);
    const state = report.states.find((s) => s.name === name && (s.namespace || undefined) === namespace);
    // The agent's word on single hooks: an enabled policy may still have attached none of them.
    const hooks = state ? hookAttachment(p, state, logged.get(namespace ? `${namespace}/${name}` : name)) : undefined;
    const verdict = !report.ready ? { status: 'fail' as const, reason: 'load-error' as const } : hooks ? withHooks(loadVerdict(state), state, hooks) : loadVerdict(state);
    return [{
      subject: plan.subjects[i]!,
      check: checks.load,
      ...verdict,
      evidence: {
        agent: plan.bundle?.version,
        ...multiLinks(p, plan),
        ...(name !== p.name ? { agentName: name } : {}),
        ...(plan.bootCount > 1 ? { boot: boot + 1 } : {}),
        ready: report.ready,
        waitedS: report.waitedS,
        ...(state ? { state: state.state, ...(state.error ? { error: state.error } : {}) } : { state: 'not listed by the agent' }),
        ...(hooks?.nothing ? { attached: `none of its ${p.hooks.length} hooks (the agent lists no sensor for it)` } : {}),
        ...(hooks?.statuses.length ? { hookStatuses: hooks.statuses } : {}),
        ...(hooks?.warnings.length ? { loaderWarnings: hooks.warnings } : {}),
        ...(report.ready ? {} : { agentAlive: report.alive, tetra: report.tetraStderr.trim().slice(-500), agentErrors: agentErrors(report.agentLog) }),
      },
      durationMs,
      source: p.source,
    }];
  });
}

/** An agent that never got ready fails with its own error lines as evidence. */
export function judgeAgent(plan: TetragonPlan, boot: number, report: AgentReport, checks: CheckNames = VM_CHECKS): CheckDraft[] {
  if (report.ready) return [];
  const subject = boot === 0 ? 'tetragon' : `tetragon (boot ${boot + 1} of ${plan.bootCount})`;
  return [{ subject, check: checks.agent, status: 'fail', reason: 'load-error', evidence: { agentErrors: agentErrors(report.agentLog), logTail: report.agentLog.slice(-3000) }, durationMs: 0 }];
}

function enabledHooks(plan: TetragonPlan, enabled: ReadonlySet<Policy>, arch: Arch): EnabledHook[] {
  return plan.policies.flatMap((p, i) => {
    if (!enabled.has(p)) return [];
    const pods = podScope(p);
    return p.hooks.map((h) => {
      const kind = h.kind === 'rawtp' ? 'tracepoint' : h.kind;
      return { policy: plan.names[i]!, key: `${kind}:${h.kind === 'kprobe' ? kprobeSymbol(h, arch) : h.name}`, spec: hookSpec(p, h), ...(pods ? { pods } : {}) };
    });
  });
}

/** Options of judgeTriggers. */
export interface TriggerJudging {
  /** The triggers ran in pods (a cluster lane): policies narrowed to pods may see them. */
  inPods?: boolean;
}

/**
 * The triggers' checks and each enabled policy's `tetragon:fired`, on the reports of
 * every boot of the cell together (each boot ran every trigger with its own policies).
 *
 * A trigger's events are those tied to it (match.ts tieToTriggers: its process tree, its
 * marker), per report. Each expectation is owed by the enabled hooks that can produce it
 * (owed.ts); one no hook owes is not judged, and is in the evidence with each watching
 * hook's reason. An owed expectation must be met by an event of a policy that owes it
 * (an exec: by any event). No owed expectation: `untested`, never a mismatch.
 */
export function judgeTriggers(plan: TetragonPlan, triggers: readonly Trigger[], reports: readonly AgentReport[], arch: Arch, checks: CheckNames = VM_CHECKS, options: TriggerJudging = {}): CheckDraft[] {
  const ready = reports.filter((r) => r.ready);
  if (ready.length === 0) {
    const errors = reports.flatMap((r) => agentErrors(r.agentLog));
    return triggers.map((t) => ({ subject: t.id, check: checks.events, status: 'fail' as const, reason: 'load-error' as const, evidence: { why: 'the agent never listed the policies', agentErrors: errors }, durationMs: 0, source: t.source }));
  }
  const out: CheckDraft[] = [];
  const events = ready.flatMap((r) => r.events);
  const enabledNames = new Set(ready.flatMap((r) => r.states).filter((s) => s.state === 'TP_STATE_ENABLED').map((s) => s.name));
  const enabled = new Set(plan.policies.filter((_, i) => enabledNames.has(plan.names[i]!)));
  const hooks = enabledHooks(plan, enabled, arch);
  const markers = triggers.map((t) => t.marker);
  // Tied per report: a boot's roots (the pids its triggers ran as) name that boot's processes only.
  const byMarker = new Map<string, TetragonEvent[]>();
  for (const r of ready) {
    for (const [m, es] of tieToTriggers(r.events, markers, r.roots)) byMarker.set(m, [...(byMarker.get(m) ?? []), ...es]);
  }
  for (const t of triggers) {
    const mine = byMarker.get(t.marker) ?? [];
    const judged = t.expect.map((x, index) => {
      if (x.type === 'process_exec') return { x, index, owedBy: null, notOwed: [] };
      const verdicts = hooks.filter((h) => watches(h, x)).map((h) => ({ h, o: owes(h, x, mine, options.inPods === true) }));
      return {
        x,
        index,
        owedBy: new Set(verdicts.flatMap(({ h, o }) => (o.owes ? [h.policy] : []))),
        notOwed: verdicts.flatMap(({ h, o }) => (o.owes ? [] : [{ policy: h.policy, hook: h.key, why: o.why }])),
      };
    });
    const applicable = judged.filter((j) => j.owedBy === null || j.owedBy.size > 0);
    const notOwed = judged.filter((j) => j.owedBy !== null && j.owedBy.size === 0).map(({ x, notOwed: why }) => ({ expected: x, ...(why.length ? { notOwedBy: why } : { why: 'no enabled policy watches it' }) }));
    const base = { subject: t.id, check: checks.events, durationMs: 0, source: t.source };
    if (applicable.length === 0) {
      out.push({ ...base, status: 'skip', reason: 'untested', evidence: { why: 'no enabled policy can produce what this trigger expects', notOwed, events: mine.length } });
      continue;
    }
    const owedBy = Object.fromEntries(applicable.flatMap(({ x, index, owedBy: by }) => (by ? [[`expect[${index}] ${describeExpected(x)}`, [...by]]] : [])));
    const judging = { ...(Object.keys(owedBy).length ? { owedBy } : {}), ...(notOwed.length ? { notOwed } : {}) };
    if (mine.length === 0) {
      out.push({ ...base, status: 'fail', reason: 'no-events', evidence: { expected: applicable.map((j) => j.x), why: `no exported event is tied to ${t.marker} (its process tree or its marker)`, ...judging } });
      continue;
    }
    // An owed expectation is met by an event of a policy that owes it: another policy's
    // event at the same hook may lack what it captures.
    const candidates = (by: Set<string> | null) => (by ? mine.filter((e) => e.policy_name !== undefined && by.has(e.policy_name)) : mine);
    const found = applicable.map(({ x, owedBy: by }) => ({ x, m: findMatch(x, candidates(by)) }));
    const misses = found.filter(({ m }) => !('matched' in m));
    if (misses.length === 0) {
      const sample = found.flatMap(({ m }) => ('matched' in m ? [summarizeEvent(m.matched)] : [])).slice(0, 3);
      out.push({ ...base, status: 'pass', reason: null, evidence: { matched: applicable.length, events: mine.length, sample, ...judging } });
    } else {
      out.push({
        ...base,
        status: 'fail',
        reason: 'event-mismatch',
        evidence: {
          unmatched: misses.map(({ x, m }) => ({ expected: x, ...('nearest' in m ? { nearest: summarizeEvent(m.nearest), differences: m.differences } : { nearest: null }) })),
          events: mine.length,
          ...judging,
        },
      });
    }
  }
  // Which policies produced events for the triggers: the agent's runtime evidence.
  for (const [i, p] of plan.policies.entries()) {
    if (!enabled.has(p)) continue;
    const produced = events.filter((e) => e.policy_name === plan.names[i]);
    out.push({
      subject: plan.subjects[i]!,
      check: checks.fired,
      status: produced.length ? 'pass' : 'skip',
      reason: produced.length ? null : 'untested',
      evidence: produced.length ? { events: produced.length, sample: produced.slice(0, 3).map(summarizeEvent) } : { why: 'no trigger event came through this policy (selectors may filter the triggers out)' },
      durationMs: 0,
      source: p.source,
    });
  }
  return out;
}

/** An expectation in a few words, for evidence keys: `process_kprobe tcp_connect`. */
function describeExpected(x: ExpectedEvent): string {
  if (x.type === 'process_tracepoint') return `${x.type} ${x.subsys}/${x.event}`;
  return 'function_name' in x ? `${x.type} ${x.function_name}` : x.type;
}
