/**
 * The trigger model: a synthetic, harmless re-enactment of one Linux MITRE ATT&CK
 * technique, as data (suites/triggers/catalogue/*.yaml, JSON Schema in
 * suites/triggers/schema/trigger.schema.json).
 *
 * Contract with whoever runs a trigger (only ever inside a bpfgate QEMU guest or a
 * trigger pod, never on the host):
 * - `steps` then `cleanup` run as root, each in its own busybox sh (never sourced into
 *   PID 1), with BPFGATE_MARKER and BPFGATE_ARCH (`x86_64` | `arm64`) exported and
 *   stdin at /dev/null; `cleanup` runs whether the steps succeeded or not.
 * - A step finishes in well under 2 s under TCG and never blocks. It works under
 *   /tmp/$BPFGATE_MARKER and records there what cleanup must undo.
 *
 * Invariants of a loaded Trigger: the id equals its file name; ids and markers are
 * unique across the loaded set and no marker contains another; the marker (or
 * $BPFGATE_MARKER) appears in `steps`; every hook hint parses with parseHookHint.
 */
import type { SourceRef } from '../../core/check.js';

/** ATT&CK Enterprise tactics in kill-chain order (the order `triggers list` sorts by). */
export const TACTICS = [
  'reconnaissance',
  'resource-development',
  'initial-access',
  'execution',
  'persistence',
  'privilege-escalation',
  'defense-evasion',
  'credential-access',
  'discovery',
  'lateral-movement',
  'collection',
  'command-and-control',
  'exfiltration',
  'impact',
] as const;

export type Tactic = (typeof TACTICS)[number];

/**
 * Hook kinds of a hint; the same kinds and names as policy/model.ts HookKind, so a
 * hint compares equal to a policy Hook.id (`rawtp` is a `raw: true` tracepoint).
 */
export const HOOK_HINT_KINDS = ['kprobe', 'tracepoint', 'rawtp', 'lsm', 'uprobe', 'usdt'] as const;

export type HookHintKind = (typeof HOOK_HINT_KINDS)[number];

export interface HookHint {
  kind: HookHintKind;
  /** kprobe: symbol (`sys_NAME` for a syscall); tracepoint/rawtp: `subsys/event`; lsm: hook; uprobe: `/path:symbol`; usdt: `/path:provider:name`. */
  name: string;
}

/** What a well-formed name looks like for each kind, with the words to say it. */
const HINT_NAME_SHAPES: Record<HookHintKind, { re: RegExp; expected: string }> = {
  kprobe: { re: /^[A-Za-z_][A-Za-z0-9_.]*$/, expected: 'kprobe:SYMBOL (a syscall as sys_NAME)' },
  tracepoint: { re: /^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/, expected: 'tracepoint:SUBSYSTEM/EVENT' },
  rawtp: { re: /^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/, expected: 'rawtp:SUBSYSTEM/EVENT' },
  lsm: { re: /^[a-z][a-z0-9_]*$/, expected: 'lsm:HOOK (the LSM hook name, e.g. lsm:file_open)' },
  uprobe: { re: /^\/[^:\s]+:[A-Za-z_][A-Za-z0-9_.@]*$/, expected: 'uprobe:/PATH:SYMBOL' },
  usdt: { re: /^\/[^:\s]+:[A-Za-z0-9_]+:[A-Za-z0-9_]+$/, expected: 'usdt:/PATH:PROVIDER:NAME' },
};

/** Parse `kind:name`; a string that is not a well-formed hint gives `{ problem }` saying what was expected. */
export function parseHookHint(hint: string): HookHint | { problem: string } {
  const colon = hint.indexOf(':');
  const kind = hint.slice(0, colon);
  const name = hint.slice(colon + 1);
  if (colon < 0 || !(HOOK_HINT_KINDS as readonly string[]).includes(kind)) {
    return { problem: `expected KIND:NAME with KIND one of ${HOOK_HINT_KINDS.join(', ')} (got ${JSON.stringify(hint)})` };
  }
  const shape = HINT_NAME_SHAPES[kind as HookHintKind];
  if (kind === 'lsm' && name.startsWith('security_')) {
    return { problem: `expected ${shape.expected}, without the security_ prefix (got ${JSON.stringify(hint)})` };
  }
  if (!shape.re.test(name)) return { problem: `expected ${shape.expected} (got ${JSON.stringify(hint)})` };
  return { kind: kind as HookHintKind, name };
}

/** One predicate on an exported argument: exactly one of `equals` and `contains`. */
export interface ArgPredicate {
  /** Position in the event's `args` list (0-based); absent: any argument. */
  index?: number;
  /** Dot path inside the argument object (`file_arg.path`, `sock_arg.dport`); absent: the whole argument. */
  path?: string;
  /** The value at `path` equals this. */
  equals?: string | number | boolean;
  /** The value at `path` contains this text (for a non-string value: its JSON text does). */
  contains?: string;
}

/** The pod an event's process ran in: every field given must equal the exported one. */
export interface PodPredicate {
  namespace?: string;
  /** The pod's name. */
  name?: string;
  /** The container's name. */
  container?: string;
  /** The container's image name, as the runtime reports it. */
  image?: string;
  /** Each must be among the exported pod_labels with this value. */
  labels?: Record<string, string>;
  workload?: string;
  workload_kind?: string;
}

/** Fields every expectation may use: they apply to the event's `process`. */
interface ProcessPredicate {
  /** `process.binary` equals this absolute path. */
  binary?: string;
  /** `process.arguments` contains this text (usually the marker). */
  argumentsContains?: string;
  /** `process.pod`, on a cluster lane. */
  pod?: PodPredicate;
}

/** What a trigger pod needs on a cluster lane. */
export interface TriggerPodNeeds {
  privileged?: boolean;
  hostPID?: boolean;
  hostNetwork?: boolean;
}

export interface ExpectedExec extends ProcessPredicate {
  type: 'process_exec';
}

export interface ExpectedKprobe extends ProcessPredicate {
  type: 'process_kprobe';
  /** The hooked function; `sys_NAME` also matches `__x64_sys_NAME` / `__arm64_sys_NAME`. */
  function_name: string;
  policy_name?: string;
  args?: ArgPredicate[];
}

export interface ExpectedTracepoint extends ProcessPredicate {
  type: 'process_tracepoint';
  subsys: string;
  event: string;
  policy_name?: string;
  args?: ArgPredicate[];
}

export interface ExpectedLsm extends ProcessPredicate {
  type: 'process_lsm';
  /** The LSM hook, e.g. `file_open`. */
  function_name: string;
  policy_name?: string;
  args?: ArgPredicate[];
}

/**
 * What Tetragon should export when a policy watching the trigger's hooks is loaded:
 * it holds when some exported event of `type` matches every field given.
 */
export type ExpectedEvent = ExpectedExec | ExpectedKprobe | ExpectedTracepoint | ExpectedLsm;

export type ExpectedEventType = ExpectedEvent['type'];

/** A trigger file as written (the JSON Schema's shape). */
export interface TriggerSpec {
  id: string;
  /** ATT&CK technique id: `T1059` or `T1059.004`. */
  technique: string;
  /** ATT&CK technique name. */
  name: string;
  tactic: Tactic;
  description: string;
  marker: string;
  steps: string;
  cleanup: string;
  /** Hook hints, `kind:name` (see parseHookHint). */
  hooks: string[];
  expect: ExpectedEvent[];
  /** What its pod needs when a cluster lane runs it (absent: an unprivileged container). */
  pod?: TriggerPodNeeds;
}

/** A loaded trigger: the spec plus where it came from. */
export interface Trigger extends TriggerSpec {
  /** Absolute path of the trigger file. */
  file: string;
  /** Where the document starts, for annotations. */
  source: SourceRef;
}
