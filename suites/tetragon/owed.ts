/**
 * Which enabled hooks owe a trigger's expected event: the rule that keeps a trigger from
 * being judged against a policy that cannot produce what it expects. Pure, from the
 * policy text and the trigger's own events.
 *
 * A hook owes an expectation (not a `process_exec`: the agent exports every exec) when
 * all of these hold:
 * 1. it watches it: the expectation's kind and function (kprobe, LSM hook) or tracepoint;
 * 2. it captures what the expectation looks at: for every argument predicate, an argument
 *    of the hook can carry it (at the predicate's index when it names one, under the
 *    exported key its path starts with: a hook without `args` exports none, a `sock`
 *    argument exports `sock_arg`, never `file_arg`). An argument type bpfgate does not
 *    know may carry anything;
 * 3. its policy reaches the trigger's processes: a policy narrowed to pods (namespaced, a
 *    `podSelector`, a `containerSelector`) sees no process of a guest without pods (in a
 *    cluster, a namespaced policy is applied where the trigger pods run);
 * 4. its selectors may let the event through (selectors.ts);
 * 5. and, when its selectors or its pod labels cannot be decided from the text, an event
 *    of the trigger did come through that hook of that policy: only then is the match
 *    owed.
 * Otherwise the expectation is not owed by that hook, with a reason saying which rule.
 */
import { specHasSelectors } from '../../policy/spec.js';
import type { ArgPredicate, ExpectedEvent } from '../triggers/model.js';
import type { TetragonEvent } from './events.js';
import { functionNameMatches } from './match.js';
import { ARG_KEY, selectorsReject } from './selectors.js';

/** One hook of an enabled policy, as the judge sees it. */
export interface EnabledHook {
  /** The policy's name in the agent (what its events carry as `policy_name`). */
  policy: string;
  /** `kind:name` as events name it: `kprobe:__x64_sys_setuid`, `tracepoint:syscalls/sys_enter_openat`, `lsm:file_open`. */
  key: string;
  /** The hook's entry in the policy (`spec.kprobes[i]`). */
  spec: Record<string, unknown> | undefined;
  /**
   * The policy sees only processes of pods: of its namespace (`namespace`), or of pods or
   * containers its labels select (`labels`, whether or not it is namespaced too).
   */
  pods?: 'namespace' | 'labels';
}

export type Owing = { owes: true; because: 'unfiltered' | 'came-through' } | { owes: false; why: string };

/** Does the hook watch what this expectation is about (its kind and function or tracepoint)? */
export function watches(hook: Pick<EnabledHook, 'key'>, expected: ExpectedEvent): boolean {
  if (expected.type === 'process_exec') return false;
  if (expected.type === 'process_tracepoint') return hook.key === `tracepoint:${expected.subsys}/${expected.event}`;
  const kind = expected.type === 'process_lsm' ? 'lsm' : 'kprobe';
  return hook.key.startsWith(`${kind}:`) && functionNameMatches(expected.function_name, hook.key.slice(kind.length + 1));
}

/** Why the hook's arguments cannot carry the predicate, or undefined when one can. */
function uncaptured(spec: Record<string, unknown> | undefined, predicate: ArgPredicate): string | undefined {
  const args = Array.isArray(spec?.args) ? (spec!.args as Array<{ type?: unknown }>) : [];
  const where = `args${predicate.index === undefined ? '' : `[${predicate.index}]`}${predicate.path ? `.${predicate.path}` : ''}`;
  const exported = args.map((a) => (typeof a.type === 'string' ? ARG_KEY[a.type] : undefined));
  const describe = () => (args.length ? `its args export ${exported.map((k, i) => k ?? `(${String(args[i]!.type)})`).join(', ')}` : 'it captures no argument');
  // Exported args follow the policy's `args` list in order.
  const candidates = predicate.index === undefined ? exported.map((k, i) => ({ k, i })) : predicate.index < args.length ? [{ k: exported[predicate.index], i: predicate.index }] : [];
  if (candidates.length === 0) return `the expectation looks at ${where}; ${describe()}`;
  const key = predicate.path?.split('.')[0];
  // A predicate on the argument's value itself, an unknown type, or the right key: it may carry it.
  if (key === undefined || candidates.some(({ k }) => k === undefined || k === key)) return undefined;
  return `the expectation looks at ${where}; ${describe()}`;
}

/**
 * Whether one enabled hook owes the expectation, for a trigger whose tied events are
 * `events` (rule 5 reads them). `inPods`: the trigger runs in a pod (a cluster lane).
 */
export function owes(hook: EnabledHook, expected: ExpectedEvent, events: readonly TetragonEvent[], inPods: boolean): Owing {
  if (!watches(hook, expected)) return { owes: false, why: `${hook.key} is not what the expectation watches` };
  for (const predicate of 'args' in expected && expected.args ? expected.args : []) {
    const why = uncaptured(hook.spec, predicate);
    if (why) return { owes: false, why };
  }
  if (hook.pods && !inPods) return { owes: false, why: `the policy sees only pods (${hook.pods === 'namespace' ? 'its namespace' : 'podSelector or containerSelector'}) and the trigger runs in no pod` };
  const rejected = selectorsReject(hook.spec, expected);
  if (rejected) return { owes: false, why: rejected };
  // A trigger pod runs in the run's namespace, where namespaced policies are applied; whether
  // a label selector picks it is not known from the text.
  const filtered = hook.pods === 'labels' || specHasSelectors(hook.spec);
  if (!filtered) return { owes: true, because: 'unfiltered' };
  const cameThrough = events.some((e) => e.policy_name === hook.policy && e.type === expected.type && eventAt(e, hook.key));
  return cameThrough
    ? { owes: true, because: 'came-through' }
    : { owes: false, why: 'its selectors or pod labels may let the event through, and no event of the trigger came through this hook' };
}

/** Is the event one of this hook's (its function or tracepoint)? */
function eventAt(event: TetragonEvent, key: string): boolean {
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  const name = key.slice(colon + 1);
  if (kind === 'tracepoint') return `${event.subsys}/${event.event}` === name;
  return event.function_name === name;
}
