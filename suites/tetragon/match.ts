/**
 * Matching exported Tetragon events against a trigger's expectations
 * (ExpectedEvent and ArgPredicate in suites/triggers/model.ts).
 *
 * Rules:
 * - `type` must be the event key. `function_name` is exact, except that `sys_NAME` also
 *   matches the native per-arch entry points `__x64_sys_NAME` and `__arm64_sys_NAME`
 *   (never the compat ones, `__ia32_sys_NAME` or `__arm64_compat_sys_NAME`: a trigger
 *   runs native binaries). `binary` equals `process.binary`; `argumentsContains` is a
 *   substring of `process.arguments`; `policy_name`, `subsys` and `event` are exact.
 * - An arg predicate looks at `args[index]`, or at every argument when `index` is absent
 *   (one of them must satisfy it). `path` is a dot path inside the argument object
 *   (`file_arg.path`; a numeric segment indexes a list); no path means the argument's
 *   single value, the value of its one oneof key. `equals` compares text with text,
 *   because protojson prints int64/uint64 as strings; `contains` looks in the string, or
 *   in the JSON text of anything else. A `bytes_arg` (base64 in protojson) is also
 *   searched decoded, so a marker written through write() can be found.
 * - A predicate with neither `equals` nor `contains` holds when the value is present.
 *
 * `explainMismatch` returns one line per field that differs: empty exactly when `matches`.
 */
import type { ArgPredicate, ExpectedEvent, PodPredicate } from '../triggers/model.js';
import { argumentKind, type EventProcess, type ExportedArgument, type TetragonEvent } from './events.js';

/** Native syscall entry prefixes that a `sys_NAME` expectation also accepts. */
export const SYSCALL_ARCH_PREFIXES = ['__x64_', '__arm64_'] as const;

export type MatchResult =
  | { matched: TetragonEvent }
  | { nearest: TetragonEvent; differences: string[] }
  | { none: true };

/** Whether an exported function name is the one expected (with the `sys_NAME` rule). */
export function functionNameMatches(expected: string, actual: string): boolean {
  if (actual === expected) return true;
  return expected.startsWith('sys_') && SYSCALL_ARCH_PREFIXES.some((prefix) => actual === `${prefix}${expected}`);
}

/** True when the event satisfies every field of the expectation. */
export function matches(expected: ExpectedEvent, event: TetragonEvent): boolean {
  return explainMismatch(expected, event).length === 0;
}

/** One line per field that differs, e.g. `binary: expected "/usr/bin/cat", got "/bin/sh"`. */
export function explainMismatch(expected: ExpectedEvent, event: TetragonEvent): string[] {
  if (event.type !== expected.type) return [`type: expected ${expected.type}, got ${event.type}`];
  const out: string[] = [];
  switch (expected.type) {
    case 'process_kprobe':
    case 'process_lsm':
      if (event.function_name === undefined || !functionNameMatches(expected.function_name, event.function_name)) {
        out.push(`function_name: expected ${describeFunctionName(expected.function_name)}, got ${show(event.function_name)}`);
      }
      break;
    case 'process_tracepoint':
      if (event.subsys !== expected.subsys) out.push(`subsys: expected ${show(expected.subsys)}, got ${show(event.subsys)}`);
      if (event.event !== expected.event) out.push(`event: expected ${show(expected.event)}, got ${show(event.event)}`);
      break;
    case 'process_exec':
      break;
  }
  if ('policy_name' in expected && expected.policy_name !== undefined && event.policy_name !== expected.policy_name) {
    out.push(`policy_name: expected ${show(expected.policy_name)}, got ${show(event.policy_name)}`);
  }
  if (expected.binary !== undefined && event.process?.binary !== expected.binary) {
    out.push(`binary: expected ${show(expected.binary)}, got ${event.process ? show(event.process.binary) : '(no process)'}`);
  }
  if (expected.argumentsContains !== undefined && !(event.process?.arguments.includes(expected.argumentsContains) ?? false)) {
    out.push(
      `arguments: expected to contain ${show(expected.argumentsContains)}, got ${event.process ? show(event.process.arguments) : '(no process)'}`,
    );
  }
  if ('args' in expected && expected.args !== undefined) {
    for (const predicate of expected.args) {
      const difference = argDifference(predicate, event.args ?? []);
      if (difference !== undefined) out.push(difference);
    }
  }
  if (expected.pod !== undefined) out.push(...podDifferences(expected.pod, event));
  return out;
}

/** One line per pod field that differs; one line when the event has no pod at all. */
export function podDifferences(expected: PodPredicate, event: TetragonEvent): string[] {
  const pod = event.process?.pod;
  if (!pod) return ['pod: expected pod metadata, got none'];
  const out: string[] = [];
  const field = (name: string, want: string | undefined, got: string | undefined) => {
    if (want !== undefined && want !== got) out.push(`pod.${name}: expected ${show(want)}, got ${show(got)}`);
  };
  field('namespace', expected.namespace, pod.namespace);
  field('name', expected.name, pod.name);
  field('container', expected.container, pod.container?.name);
  field('image', expected.image, pod.container?.image?.name);
  field('workload', expected.workload, pod.workload);
  field('workload_kind', expected.workload_kind, pod.workload_kind);
  for (const [key, value] of Object.entries(expected.labels ?? {})) field(`labels.${key}`, value, pod.pod_labels?.[key]);
  return out;
}

/**
 * The first event that matches; else the event of the same type with the fewest
 * differences (ties: the latest); else none when no event has the expected type.
 */
export function findMatch(expected: ExpectedEvent, events: readonly TetragonEvent[]): MatchResult {
  let nearest: { event: TetragonEvent; differences: string[] } | undefined;
  for (const event of events) {
    if (event.type !== expected.type) continue;
    const differences = explainMismatch(expected, event);
    if (differences.length === 0) return { matched: event };
    if (nearest === undefined || differences.length <= nearest.differences.length) nearest = { event, differences };
  }
  return nearest ? { nearest: nearest.event, differences: nearest.differences } : { none: true };
}

/**
 * Which trigger marker the event carries: looked for in the process's arguments and
 * binary, then the parent's, then every string inside the args (bytes decoded).
 * Markers never contain one another (the trigger loader ensures it), so the first found is the one.
 */
export function markerOf(event: TetragonEvent, markers: readonly string[]): string | undefined {
  const texts: string[] = [];
  for (const p of [event.process, event.parent]) if (p) texts.push(p.arguments, p.binary);
  for (const arg of event.args ?? []) collectStrings(arg, undefined, texts);
  for (const text of texts) {
    const found = markers.find((m) => m.length > 0 && text.includes(m));
    if (found !== undefined) return found;
  }
  return undefined;
}

// ---- arguments ----

/** Every string leaf of a value, with `bytes_arg` strings also decoded. */
function collectStrings(value: unknown, key: string | undefined, out: string[]): void {
  if (typeof value === 'string') out.push(...textsOf(value, key));
  else if (Array.isArray(value)) for (const v of value) collectStrings(v, key, out);
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) collectStrings(v, k, out);
}

/** The texts a value is searched in: the value itself, and for base64 bytes its decoded form. */
function textsOf(value: string, key: string | undefined): string[] {
  return key === 'bytes_arg' ? [value, Buffer.from(value, 'base64').toString('latin1')] : [value];
}

/** The value a predicate looks at inside one argument, with the key it sits under. */
function valueAt(arg: ExportedArgument, path: string | undefined): { value: unknown; key: string | undefined } {
  if (path === undefined) {
    const keys = Object.keys(arg).filter((k) => k !== 'label');
    const only = keys.length === 1 ? argumentKind(arg) : undefined;
    return only === undefined ? { value: keys.length === 0 ? undefined : arg, key: undefined } : { value: arg[only], key: only };
  }
  let current: unknown = arg;
  const segments = path.split('.');
  for (const segment of segments) {
    if (Array.isArray(current) && /^\d+$/.test(segment)) current = current[Number(segment)];
    else if (typeof current === 'object' && current !== null && !Array.isArray(current)) current = (current as Record<string, unknown>)[segment];
    else return { value: undefined, key: segment };
  }
  return { value: current, key: segments[segments.length - 1] };
}

function holds(predicate: ArgPredicate, found: { value: unknown; key: string | undefined }): boolean {
  const { value, key } = found;
  if (value === undefined || value === null) return false;
  if (predicate.equals !== undefined) {
    // Text against text: `sport: 22` must equal 22, and an int64 `"65536"` must equal 65536.
    if (typeof value === 'object' || String(value) !== String(predicate.equals)) return false;
  }
  if (predicate.contains !== undefined) {
    const texts = typeof value === 'string' ? textsOf(value, key) : [JSON.stringify(value)];
    if (!texts.some((t) => t.includes(predicate.contains as string))) return false;
  }
  return true;
}

/** Why no argument satisfies the predicate, or undefined when one does. */
function argDifference(predicate: ArgPredicate, args: readonly ExportedArgument[]): string | undefined {
  const where = `args[${predicate.index ?? '*'}]${predicate.path === undefined ? '' : `.${predicate.path}`}`;
  const wanted =
    predicate.equals !== undefined
      ? `expected ${show(predicate.equals)}${predicate.contains !== undefined ? ` containing ${show(predicate.contains)}` : ''}`
      : predicate.contains !== undefined
        ? `expected to contain ${show(predicate.contains)}`
        : 'expected a value';
  if (predicate.index !== undefined) {
    const arg = args[predicate.index];
    if (arg === undefined) return `${where}: ${wanted}, got no argument at index ${predicate.index} (the event has ${args.length})`;
    const found = valueAt(arg, predicate.path);
    return holds(predicate, found) ? undefined : `${where}: ${wanted}, got ${show(found.value)}`;
  }
  const found = args.map((arg) => valueAt(arg, predicate.path));
  if (found.some((f) => holds(predicate, f))) return undefined;
  return `${where}: ${wanted}, got ${found.length === 0 ? 'no arguments' : found.map((f) => show(f.value)).join(', ')}`;
}

// ---- wording ----

function describeFunctionName(name: string): string {
  if (!name.startsWith('sys_')) return show(name);
  return `${show(name)} (or ${SYSCALL_ARCH_PREFIXES.map((p) => show(`${p}${name}`)).join(', ')})`;
}

const MAX_SHOWN = 80;

/** A value as it reads in a difference: strings quoted, absent said so, long text cut. */
function show(value: unknown): string {
  if (value === undefined || value === null) return '(absent)';
  const text = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 1)}…` : text;
}

// ---- tying events to triggers ----

/** What roots a trigger's process tree, besides a marker in a process's argv or binary. */
export interface TriggerRoots {
  /** pid -> marker: the process a trigger's steps ran as (a QEMU guest, one boot). */
  pids?: ReadonlyMap<number, string>;
  /** A pod label whose value is a trigger's id (a cluster's trigger pods). */
  podLabel?: { key: string; markerOf: ReadonlyMap<string, string> };
}

/**
 * Each trigger's events (by marker), in export order. An event belongs to a trigger when
 * its process (or, failing that, its parent) descends from a root of the trigger: the
 * process its steps ran as, a process of its pod, or a process whose argv or binary
 * carries its marker; else when a string in its args carries the marker (a kernel thread
 * acting on a marker file). The tree is what ties a helper whose argv names no marker
 * (t1105's `nc`): each process names its parent by `parent_exec_id`, and an exec within
 * one pid names the image it replaced, so the chain reaches the root. Events of other
 * processes belong to no trigger. The guest's pre-filter (guest/tied-events.awk) keeps
 * the same lines.
 */
export function tieToTriggers(events: readonly TetragonEvent[], markers: readonly string[], roots: TriggerRoots = {}): Map<string, TetragonEvent[]> {
  const up = new Map<string, string>();
  const rooted = new Map<string, string>();
  const ownMarker = (p: EventProcess): string | undefined => {
    const label = roots.podLabel && p.pod?.pod_labels?.[roots.podLabel.key];
    return (
      (p.pid !== undefined ? roots.pids?.get(p.pid) : undefined) ??
      (label ? roots.podLabel!.markerOf.get(label) : undefined) ??
      markers.find((m) => m.length > 0 && (p.arguments.includes(m) || p.binary.includes(m)))
    );
  };
  for (const e of events) {
    for (const p of [e.process, e.parent]) {
      if (!p?.exec_id) continue;
      if (p.parent_exec_id && p.parent_exec_id !== p.exec_id) up.set(p.exec_id, p.parent_exec_id);
      const m = rooted.has(p.exec_id) ? undefined : ownMarker(p);
      if (m) rooted.set(p.exec_id, m);
    }
    if (e.process?.exec_id && e.parent?.exec_id && !up.has(e.process.exec_id)) up.set(e.process.exec_id, e.parent.exec_id);
  }
  const known = new Map<string, string | null>();
  const markerOfExec = (start: string | undefined): string | undefined => {
    const chain: string[] = [];
    let found: string | null = null;
    for (let id = start; id && chain.length < 64; id = up.get(id)) {
      const k = known.get(id);
      if (k !== undefined) {
        found = k;
        break;
      }
      chain.push(id);
      const m = rooted.get(id);
      if (m) {
        found = m;
        break;
      }
    }
    for (const id of chain) known.set(id, found);
    return found ?? undefined;
  };
  const out = new Map<string, TetragonEvent[]>();
  for (const e of events) {
    let m = markerOfExec(e.process?.exec_id) ?? markerOfExec(e.parent?.exec_id);
    if (!m) {
      const texts: string[] = [];
      for (const arg of e.args ?? []) collectStrings(arg, undefined, texts);
      m = markers.find((marker) => marker.length > 0 && texts.some((t) => t.includes(marker)));
    }
    if (!m) continue;
    const mine = out.get(m);
    if (mine) mine.push(e);
    else out.set(m, [e]);
  }
  return out;
}
