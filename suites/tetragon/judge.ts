/**
 * Judging the tetragon lane, platform-free: from what an agent reported (its answers
 * to each policy add, its policy listing, its exported events, its log) to checks.
 * A QEMU guest's agent and a cluster node's agent report the same things, so both
 * lanes judge through here.
 *
 * - `tetragon:load` per policy: the agent's own state (enabled, load error, partially
 *   enabled), a refusal at add time with the agent's words, or the machine's fault
 *   when the load budget ran out;
 * - `tetragon:events` per trigger: the events tied to it by its marker against its
 *   `expect` list; an expectation no enabled hook can produce is not owed;
 * - `tetragon:fired` per enabled policy: the events that came through it.
 */
import type { CheckDraft } from '../../core/check.js';
import type { Arch } from '../../matrix/cell.js';
import type { Policy } from '../../policy/model.js';
import { hasSelectors, hookSpec } from '../../policy/spec.js';
import { kprobeSymbol } from '../policies/targets.js';
import type { ExpectedEvent, Trigger } from '../triggers/model.js';
import { summarizeEvent, type TetragonEvent } from './events.js';
import { agentErrors, loadVerdict, type PolicyLoadState } from './load-state.js';
import { findMatch, functionNameMatches, markerOf } from './match.js';
import { appliedNamespace, type TetragonPlan } from './plan.js';
import { selectorsMayPass } from './selectors.js';

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
  /** The agent served its API and listed every policy with a settled state. */
  ready: boolean;
  /** The agent's process was still alive when listed. */
  alive: boolean;
  states: PolicyLoadState[];
  /** Exported events (those tied to a trigger marker). */
  events: TetragonEvent[];
  /** The tail of the agent's log. */
  agentLog: string;
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
  return { ...base, status: 'fail', reason: 'load-error', evidence: { agent: plan.bundle?.version, tetraAdd: answer.output.trim().slice(0, 2000), at: answer.at, ...boot } };
}

/** The load checks of the policies of one boot, from that boot's agent report. */
export function judgeLoads(plan: TetragonPlan, boot: number, report: AgentReport, durationMs: number, checks: CheckNames = VM_CHECKS): CheckDraft[] {
  return plan.policies.flatMap((p, i) => {
    if (plan.bootOf[i] !== boot) return [];
    const name = plan.names[i]!;
    const namespace = plan.namespaces ? plan.namespaces[i] : appliedNamespace(p);
    const state = report.states.find((s) => s.name === name && (s.namespace || undefined) === namespace);
    const verdict = report.ready ? loadVerdict(state) : { status: 'fail' as const, reason: 'load-error' as const };
    return [{
      subject: plan.subjects[i]!,
      check: checks.load,
      ...verdict,
      evidence: {
        agent: plan.bundle?.version,
        ...(name !== p.name ? { agentName: name } : {}),
        ...(plan.bootCount > 1 ? { boot: boot + 1 } : {}),
        ready: report.ready,
        waitedS: report.waitedS,
        ...(state ? { state: state.state, ...(state.error ? { error: state.error } : {}) } : { state: 'not listed by the agent' }),
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

/** A hook of an enabled policy: `kind:name` as events name it, and its policy entry. */
interface EnabledHook {
  key: string;
  spec: Record<string, unknown> | undefined;
  /** Behind selectors: it exports only the hits they let through. */
  filtered: boolean;
}

function enabledHooks(policies: readonly Policy[], enabled: ReadonlySet<Policy>, arch: Arch): EnabledHook[] {
  return policies.filter((p) => enabled.has(p)).flatMap((p) =>
    p.hooks.map((h) => {
      const kind = h.kind === 'rawtp' ? 'tracepoint' : h.kind;
      return { key: `${kind}:${h.kind === 'kprobe' ? kprobeSymbol(h, arch) : h.name}`, spec: hookSpec(p, h), filtered: hasSelectors(p, h) };
    }),
  );
}

/** The enabled hooks that watch what this expectation is about. */
function watching(expected: ExpectedEvent, hooks: readonly EnabledHook[]): EnabledHook[] {
  if (expected.type === 'process_exec') return [];
  if (expected.type === 'process_tracepoint') return hooks.filter((h) => h.key === `tracepoint:${expected.subsys}/${expected.event}`);
  const kind = expected.type === 'process_lsm' ? 'lsm' : 'kprobe';
  return hooks.filter((h) => h.key.startsWith(`${kind}:`) && functionNameMatches(expected.function_name, h.key.slice(kind.length + 1)));
}

/**
 * The triggers' checks and each enabled policy's `tetragon:fired`, on the reports of
 * every boot of the cell together (each boot ran every trigger with its own policies).
 */
export function judgeTriggers(plan: TetragonPlan, triggers: readonly Trigger[], reports: readonly AgentReport[], arch: Arch, checks: CheckNames = VM_CHECKS): CheckDraft[] {
  const ready = reports.filter((r) => r.ready);
  if (ready.length === 0) {
    const errors = reports.flatMap((r) => agentErrors(r.agentLog));
    return triggers.map((t) => ({ subject: t.id, check: checks.events, status: 'fail' as const, reason: 'load-error' as const, evidence: { why: 'the agent never listed the policies', agentErrors: errors }, durationMs: 0, source: t.source }));
  }
  const out: CheckDraft[] = [];
  const events = ready.flatMap((r) => r.events);
  const enabledNames = new Set(ready.flatMap((r) => r.states).filter((s) => s.state === 'TP_STATE_ENABLED').map((s) => s.name));
  const enabled = new Set(plan.policies.filter((_, i) => enabledNames.has(plan.names[i]!)));
  const hooks = enabledHooks(plan.policies, enabled, arch);
  const markers = triggers.map((t) => t.marker);
  const byMarker = new Map<string, TetragonEvent[]>();
  for (const e of events) {
    const m = markerOf(e, markers);
    if (m) byMarker.set(m, [...(byMarker.get(m) ?? []), e]);
  }
  for (const t of triggers) {
    const mine = byMarker.get(t.marker) ?? [];
    // An exec is always exported; an unfiltered hook owes every expected event; a hook
    // behind selectors owes it when the selectors can let it through (selectors.ts) and
    // did let an event of this trigger through at that hook (then the event must match).
    const cameThrough = (x: ExpectedEvent) =>
      mine.some((e) => e.type === x.type && (functionNameMatches('function_name' in x ? x.function_name : '', e.function_name ?? '') || (x.type === 'process_tracepoint' && e.subsys === x.subsys && e.event === x.event)));
    const owed = (x: ExpectedEvent) => {
      if (x.type === 'process_exec') return true;
      const hs = watching(x, hooks);
      return hs.some((h) => !h.filtered) || (hs.some((h) => selectorsMayPass(h.spec, x)) && cameThrough(x));
    };
    const applicable = t.expect.filter(owed);
    const base = { subject: t.id, check: checks.events, durationMs: 0, source: t.source };
    if (applicable.length === 0) {
      out.push({ ...base, status: 'skip', reason: 'untested', evidence: { why: 'no enabled policy hooks what this trigger expects, or its selectors let none of the trigger\'s events through', events: mine.length } });
      continue;
    }
    if (mine.length === 0) {
      out.push({ ...base, status: 'fail', reason: 'no-events', evidence: { expected: applicable, why: `no exported event carries ${t.marker}` } });
      continue;
    }
    const misses = applicable.map((x) => ({ x, m: findMatch(x, mine) })).filter(({ m }) => !('matched' in m));
    if (misses.length === 0) {
      out.push({ ...base, status: 'pass', reason: null, evidence: { matched: applicable.length, events: mine.length, sample: mine.slice(0, 3).map(summarizeEvent) } });
    } else {
      out.push({
        ...base,
        status: 'fail',
        reason: 'event-mismatch',
        evidence: {
          unmatched: misses.map(({ x, m }) => ({ expected: x, ...('nearest' in m ? { nearest: summarizeEvent(m.nearest), differences: m.differences } : { nearest: null }) })),
          events: mine.length,
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
