/**
 * The agent's own word on each policy: `tetra tracingpolicy list -o json`
 * (`{"policies":[{"name","namespace","state":"TP_STATE_*","error","enabled",...}]}`).
 * Older agents have no `state`: `enabled` and `error` decide then.
 */
import type { Reason } from '../../core/reasons.js';
import type { Policy } from '../../policy/model.js';
import { ignoresMissingCall } from '../../policy/spec.js';

export interface PolicyLoadState {
  name: string;
  namespace: string;
  state: string;
  error: string;
  raw: Record<string, unknown>;
}

export function parsePolicyList(text: string): PolicyLoadState[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  const doc = JSON.parse(trimmed) as { policies?: Array<Record<string, unknown>> };
  return (doc.policies ?? []).map((p) => {
    const enabled = p.enabled === true;
    const error = typeof p.error === 'string' ? p.error : '';
    const state = typeof p.state === 'string' ? p.state : error ? 'TP_STATE_LOAD_ERROR' : enabled ? 'TP_STATE_ENABLED' : 'TP_STATE_UNKNOWN';
    return { name: String(p.name ?? ''), namespace: String(p.namespace ?? ''), state, error, raw: p };
  });
}

/** The check a load state becomes: enabled passes, still loading is the machine's error, anything else fails with the agent's words. */
export function loadVerdict(state: PolicyLoadState | undefined): { status: 'pass' | 'fail' | 'error'; reason: Reason | null } {
  if (!state) return { status: 'fail', reason: 'load-error' };
  // Still loading when the guest's time was up: the machine was too slow, the policy is not at fault.
  if (state.state === 'TP_STATE_LOADING') return { status: 'error', reason: 'infra-boot-timeout' };
  if (state.state === 'TP_STATE_ENABLED') return { status: 'pass', reason: null };
  if (state.state === 'TP_STATE_PARTIALLY_ENABLED') return { status: 'fail', reason: 'partially-enabled' };
  return { status: 'fail', reason: loadErrorReason(state.error) };
}

/** The reason of a refusal in the agent's words: the tail-call finding where they say so. */
export function loadErrorReason(error: string): 'tailcall-attach-type' | 'load-error' {
  return refusedMixedTailCalls(error) ? 'tailcall-attach-type' : 'load-error';
}

/** The lines of the agent's log that say why it failed (level=error / fatal, or a Go panic). */
export function agentErrors(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /level=(error|fatal)|"level":"(error|fatal)"|^panic:|Failed to|failed to start/i.test(l))
    .slice(-8);
}

/**
 * The kernel refused a program of the agent's multi-kprobe (or multi-uprobe) object with
 * EINVAL at load: Tetragon v1.5.0 mixes kprobe.multi and kprobe programs in one tail-call
 * map, which kernels with the attach-type enforcement refuse (measured on Debian 6.12.57+:
 * `failed prog /var/lib/tetragon/bpf_multi_kprobe_v612.o ... program generic_kprobe_setup_event:
 * load program: invalid argument`).
 */
export function refusedMixedTailCalls(error: string): boolean {
  return /bpf_multi_(kprobe|uprobe)\w*\.o/.test(error) && /load program: invalid argument/i.test(error);
}

/** What the agent says of one hook of a policy. */
export interface HookStatus {
  /** `kprobes`, `uprobes`, ... (newer agents); `kprobes` for the lines of v1.5.0's log. */
  section: string;
  /** The hook's index in its section, when the agent says it. */
  index?: number;
  /** The call, symbol or description the agent names the hook by. */
  hook: string;
  /** `loaded`, `call-not-found`, `partial-call-not-found`, `digest-rejected`, or the agent's own word. */
  state: string;
  /** Where it was read: the policy listing's `hook_statuses`, or the agent's log. */
  from: 'listing' | 'log';
}

/** The per-hook words of the agent's log, for one policy (by its long name: `namespace/name` or `name`). */
export interface LoggedHooks {
  statuses: HookStatus[];
  /** Per-policy loader warnings that name no single hook (an argument type that differs from the kernel's). */
  warnings: string[];
}

/** `HookState` of api/v1/tetragon/sensors.proto (agents after v1.6), in the words checks use. */
const HOOK_STATES: Record<string, string> = {
  STATUS_UNSPECIFIED: 'unspecified',
  STATUS_LOADED: 'loaded',
  STATUS_DIGEST_REJECTED: 'digest-rejected',
  STATUS_CALL_NOT_FOUND: 'call-not-found',
  STATUS_PARTIAL_CALL_NOT_FOUND: 'partial-call-not-found',
};

/**
 * A policy's hook statuses from its listing: `hook_statuses` (`{section, state, hook_description,
 * hook_idx}`), which agents after v1.6 send; undefined when the listing has none (v1.5.0).
 */
export function listedHookStatuses(state: PolicyLoadState): HookStatus[] | undefined {
  const raw = state.raw.hook_statuses;
  if (!Array.isArray(raw)) return undefined;
  return raw.filter((h): h is Record<string, unknown> => typeof h === 'object' && h !== null).map((h) => {
    const word = typeof h.state === 'string' ? h.state : 'STATUS_UNSPECIFIED';
    return {
      section: String(h.section ?? ''),
      ...(typeof h.hook_idx === 'number' ? { index: h.hook_idx } : { index: 0 }),
      hook: String(h.hook_description ?? ''),
      state: HOOK_STATES[word] ?? word,
      from: 'listing' as const,
    };
  });
}

/** The key=value pairs of one logfmt line (values may be quoted, with \" inside), or a JSON log line's fields. */
export function logFields(line: string): Record<string, string> {
  const trimmed = line.trim();
  if (trimmed.startsWith('{')) {
    try {
      const o = JSON.parse(trimmed) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    } catch {
      return {};
    }
  }
  const out: Record<string, string> = {};
  for (const m of trimmed.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const v = m[2]!;
    out[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
  }
  return out;
}

/** The agent's log lines about single hooks (guest/tetragon.sh greps with this pattern, written into the guest). */
export const HOOK_LOG_LINE = /kprobe call ignored|pre-validation/;

/**
 * What v1.5.0's loader logs of single hooks, per policy: a call it skipped because the
 * kernel lacks it (`kprobe call ignored because it was not found`, with `idx` and `call`,
 * pkg/sensors/tracing/generickprobe.go; only under `ignore.callNotFound`, else the load
 * fails), and the pre-validation warnings it loads past.
 */
export function loggedHooks(log: string): Map<string, LoggedHooks> {
  const out = new Map<string, LoggedHooks>();
  const of = (policy: string) => {
    let entry = out.get(policy);
    if (!entry) out.set(policy, (entry = { statuses: [], warnings: [] }));
    return entry;
  };
  for (const line of log.split('\n')) {
    if (!HOOK_LOG_LINE.test(line)) continue;
    const f = logFields(line);
    if (!f.policy || !f.msg) continue;
    if (f.msg.startsWith('kprobe call ignored')) {
      of(f.policy).statuses.push({ section: 'kprobes', hook: f.call ?? '', state: 'call-not-found', from: 'log', ...(f.idx !== undefined ? { index: Number(f.idx) } : {}) });
    } else {
      of(f.policy).warnings.push(`${f.msg}${f.error ? `: ${f.error}` : ''}`);
    }
  }
  return out;
}

/** A policy's hooks as the agent attached them: the evidence of tetragon:load. */
export interface HookAttachment {
  /** The agent's word on single hooks (its listing's `hook_statuses`, or v1.5.0's log), each with whether the policy asked for it. */
  statuses: (HookStatus & { asked: boolean })[];
  /** Loader warnings on the policy that name no single hook. */
  warnings: string[];
  /** The agent lists the policy with hooks and attached none of them (no sensor, or no hook loaded). */
  nothing: boolean;
}

/** Was a hook the agent did not attach skipped because the policy asked it to (`ignore.callNotFound`)? */
function asked(policy: Policy, status: HookStatus): boolean {
  if (status.state !== 'call-not-found' && status.state !== 'partial-call-not-found') return false;
  const hook =
    status.from === 'listing'
      ? policy.hooks.find((h) => h.path?.startsWith(`spec.${status.section}[${status.index ?? 0}]`))
      : policy.hooks.find((h) => h.kind === 'kprobe' && (h.name === status.hook || Object.values(h.symbols).includes(status.hook)));
  // v1.5.0 skips a missing call only under ignore.callNotFound (else the load fails): a call
  // its log names and no hook of the policy does (a list's expansion) was asked for too.
  if (!hook) return status.from === 'log';
  return ignoresMissingCall(policy, hook);
}

/**
 * What the agent attached of an enabled policy. The listing's `hook_statuses` when the agent
 * sends them; else, for v1.5.0, its log's per-hook lines (loggedHooks, by the policy's long
 * name) and its listing's `sensors`: an enabled policy with hooks and no sensor attached
 * nothing (v1.5.0 returns no sensor when every kprobe was skipped, and lists it enabled).
 */
export function hookAttachment(policy: Policy, state: PolicyLoadState, logged: LoggedHooks | undefined): HookAttachment {
  const statuses = (listedHookStatuses(state) ?? logged?.statuses ?? []).map((s) => ({ ...s, asked: asked(policy, s) }));
  const sensors = Array.isArray(state.raw.sensors) ? state.raw.sensors : [];
  const anyLoaded = statuses.some((s) => s.state === 'loaded' || s.state === 'partial-call-not-found');
  const nothing = policy.hooks.length > 0 && (sensors.length === 0 || (statuses.length > 0 && statuses[0]!.from === 'listing' && !anyLoaded));
  return { statuses, warnings: logged?.warnings ?? [], nothing };
}

/**
 * The load verdict once the hooks are known, so that "enabled" never hides a hook that did
 * not attach: loadVerdict reads the policy's state alone.
 * - An enabled policy that attached nothing fails: `symbol-missing` when the agent says every
 *   hook's call is not found (asked for or not: a policy that traces nothing is no pass),
 *   else `partially-enabled`.
 * - A hook not attached that the policy did not ask to skip fails it as `partially-enabled`.
 * - Hooks skipped as asked (`ignore.callNotFound`, written for kernels that lack a call) are
 *   evidence only: the policy got what it asked for, also where a newer agent lists it as
 *   partially enabled for them.
 * Any other state keeps loadVerdict's answer.
 */
export function withHooks(verdict: { status: 'pass' | 'fail' | 'error'; reason: Reason | null }, state: PolicyLoadState | undefined, hooks: HookAttachment): { status: 'pass' | 'fail' | 'error'; reason: Reason | null } {
  if (!state || (state.state !== 'TP_STATE_ENABLED' && state.state !== 'TP_STATE_PARTIALLY_ENABLED')) return verdict;
  const notAttached = hooks.statuses.filter((s) => s.state !== 'loaded');
  if (hooks.nothing) {
    const notFound = notAttached.length > 0 && notAttached.every((s) => s.state === 'call-not-found');
    return { status: 'fail', reason: notFound ? 'symbol-missing' : 'partially-enabled' };
  }
  if (notAttached.some((s) => !s.asked)) return { status: 'fail', reason: 'partially-enabled' };
  if (state.state === 'TP_STATE_PARTIALLY_ENABLED' && notAttached.length > 0) return { status: 'pass', reason: null };
  return verdict;
}
