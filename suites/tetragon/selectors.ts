/**
 * Whether a hook's selectors can let an expected event through, decided from the
 * policy text alone. Only what is certain is decided; anything else may pass, and
 * then the events themselves decide (owed.ts). Certain:
 * - a `matchArgs` entry against a value the expectation pins with `equals`: string
 *   comparisons (Equal, NotEqual, Prefix, Postfix and their Not forms) on string-like
 *   arguments, Equal/NotEqual and the GT/LT family on integers, and the port operators
 *   (SPort, DPort and their Not forms, ranges `low:high`) on sockets;
 * - a `matchBinaries` entry against the binary the expectation pins (In, NotIn, Prefix,
 *   Postfix and their Not forms; `followChildren` lets children of other binaries in, so
 *   it decides nothing);
 * - a selector whose actions include `NoPost`: it acts and exports nothing.
 * Tetragon's semantics: selectors are alternatives, the entries of one selector all
 * have to hold, and one entry holds when any of its values does (a Not operator: when
 * none does).
 */
import { specHasSelectors } from '../../policy/spec.js';
import type { ArgPredicate, ExpectedEvent } from '../triggers/model.js';

/** The exported key of each argument type (the event's `args[i]`), as v1.5.0 exports them (pkg/grpc/tracing). */
export const ARG_KEY: Record<string, string> = {
  int: 'int_arg', int32: 'int_arg', sint32: 'int_arg', int16: 'int_arg', sint16: 'int_arg', int8: 'int_arg', sint8: 'int_arg',
  uint32: 'uint_arg', uint16: 'uint_arg', uint8: 'uint_arg',
  size_t: 'size_arg', uint64: 'size_arg', ulong: 'size_arg',
  long: 'long_arg', int64: 'long_arg', sint64: 'long_arg',
  string: 'string_arg', filename: 'string_arg',
  char_buf: 'bytes_arg', char_iovec: 'bytes_arg', iov_iter: 'bytes_arg',
  file: 'file_arg', fd: 'file_arg', kiocb: 'file_arg',
  path: 'path_arg', dentry: 'path_arg',
  sock: 'sock_arg', socket: 'sock_arg',
  skb: 'skb_arg',
  sockaddr: 'sockaddr_arg',
  cred: 'process_credentials_arg',
  linux_binprm: 'linux_binprm_arg',
  net_device: 'net_dev_arg',
  bpf_attr: 'bpf_attr_arg',
  perf_event: 'perf_event_arg',
  bpf_map: 'bpf_map_arg',
  user_namespace: 'user_ns_arg',
  capability: 'capability_arg',
  load_info: 'module_arg', module: 'module_arg',
  kernel_cap_t: 'kernel_cap_t_arg',
  cap_inheritable: 'cap_inheritable_arg', cap_permitted: 'cap_permitted_arg', cap_effective: 'cap_effective_arg',
};

/** Argument keys whose value is a string (or a `.path` string) that string operators compare. */
const STRING_KEYS = new Set(['string_arg', 'file_arg', 'path_arg', 'linux_binprm_arg']);
const INT_KEYS = new Set(['int_arg', 'uint_arg', 'size_arg', 'long_arg']);
const SOCKET_KEYS = new Set(['sock_arg', 'skb_arg', 'sockaddr_arg']);
/** Port operators: the socket field they read, and whether they negate. */
const PORT_OPERATORS: Record<string, { field: 'sport' | 'dport'; not: boolean }> = {
  SPort: { field: 'sport', not: false },
  NotSPort: { field: 'sport', not: true },
  DPort: { field: 'dport', not: false },
  NotDPort: { field: 'dport', not: true },
};

type Spec = Record<string, unknown>;

interface MatchArg {
  index?: number;
  operator?: string;
  values?: unknown[];
}

interface MatchBinary {
  operator?: string;
  values?: unknown[];
  followChildren?: boolean;
}

interface Selector {
  matchArgs?: MatchArg[];
  matchBinaries?: MatchBinary[];
  matchActions?: { action?: string }[];
}

function predicates(expected: ExpectedEvent): ArgPredicate[] {
  return 'args' in expected && expected.args ? expected.args : [];
}

/** Values the expectation pins with `equals` at `path` (exactly) or, for string keys, at `key` or `key.path`. */
function pinnedAt(expected: ExpectedEvent, paths: readonly string[]): string[] {
  return predicates(expected).flatMap((a) => (a.equals !== undefined && paths.includes(a.path ?? '') ? [String(a.equals)] : []));
}

function stringHolds(operator: string, values: string[], value: string): boolean | undefined {
  switch (operator) {
    case 'Equal': return values.includes(value);
    case 'NotEqual': return !values.includes(value);
    case 'Prefix': return values.some((v) => value.startsWith(v));
    case 'NotPrefix': return !values.some((v) => value.startsWith(v));
    case 'Postfix': return values.some((v) => value.endsWith(v));
    case 'NotPostfix': return !values.some((v) => value.endsWith(v));
    default: return undefined;
  }
}

function intHolds(operator: string, values: string[], value: string): boolean | undefined {
  if (!/^-?\d+$/.test(value) || values.some((v) => !/^-?\d+$/.test(v))) return undefined;
  const n = BigInt(value);
  switch (operator) {
    case 'Equal': return values.some((v) => BigInt(v) === n);
    case 'NotEqual': return !values.some((v) => BigInt(v) === n);
    case 'GT': case 'GreaterThan': return values.some((v) => n > BigInt(v));
    case 'LT': case 'LessThan': return values.some((v) => n < BigInt(v));
    default: return undefined;
  }
}

/** A port value `N` or a range `LOW:HIGH` holds `port`; undefined when it is neither. */
function portIn(value: string, port: number): boolean | undefined {
  const m = /^(\d+)(?::(\d+))?$/.exec(value.trim());
  if (!m) return undefined;
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : Number(m[2]);
  return port >= low && port <= high;
}

function portHolds(operator: string, values: string[], value: string): boolean | undefined {
  const op = PORT_OPERATORS[operator];
  if (!op || !/^\d+$/.test(value)) return undefined;
  const hits = values.map((v) => portIn(v, Number(value)));
  if (hits.some((h) => h === undefined)) return undefined;
  const any = hits.some(Boolean);
  return op.not ? !any : any;
}

/** Why this matchArgs entry certainly rejects the expected event, or undefined when it may hold. */
function argEntryRejects(spec: Spec, entry: MatchArg, expected: ExpectedEvent): string | undefined {
  const args = Array.isArray(spec.args) ? (spec.args as Array<{ index?: number; type?: string }>) : [];
  const type = args.find((a) => (a.index ?? 0) === (entry.index ?? 0))?.type;
  const key = type ? ARG_KEY[type] : undefined;
  if (!key || !entry.operator || !Array.isArray(entry.values)) return undefined;
  const values = entry.values.map(String);
  let pinned: string[] = [];
  let holds: (value: string) => boolean | undefined = () => undefined;
  if (PORT_OPERATORS[entry.operator] && SOCKET_KEYS.has(key)) {
    pinned = pinnedAt(expected, [`${key}.${PORT_OPERATORS[entry.operator]!.field}`]);
    holds = (v) => portHolds(entry.operator!, values, v);
  } else if (STRING_KEYS.has(key)) {
    pinned = pinnedAt(expected, [key, `${key}.path`]);
    holds = (v) => stringHolds(entry.operator!, values, v);
  } else if (INT_KEYS.has(key)) {
    pinned = pinnedAt(expected, [key]);
    holds = (v) => intHolds(entry.operator!, values, v);
  }
  // Every pinned value must fail for a certain rejection (the predicate may name any argument).
  if (pinned.length === 0 || pinned.some((v) => holds(v) !== false)) return undefined;
  return `matchArgs ${entry.operator} ${JSON.stringify(values)} on args index ${entry.index ?? 0} (${type}) rejects ${pinned.join(', ')}`;
}

/** Why this matchBinaries entry certainly rejects the expected event's binary, or undefined when it may hold. */
function binaryEntryRejects(entry: MatchBinary, expected: ExpectedEvent): string | undefined {
  if (expected.binary === undefined || entry.followChildren || !entry.operator || !Array.isArray(entry.values)) return undefined;
  const values = entry.values.map(String);
  const operator = entry.operator === 'In' ? 'Equal' : entry.operator === 'NotIn' ? 'NotEqual' : entry.operator;
  return stringHolds(operator, values, expected.binary) === false ? `matchBinaries ${entry.operator} ${JSON.stringify(values)} rejects ${expected.binary}` : undefined;
}

/** Why this selector certainly exports no event the expectation describes, or undefined when it may. */
function selectorRejects(spec: Spec, selector: Selector, expected: ExpectedEvent): string | undefined {
  if ((selector.matchActions ?? []).some((a) => a.action === 'NoPost')) return 'its action NoPost exports no event';
  for (const entry of selector.matchBinaries ?? []) {
    const why = binaryEntryRejects(entry, expected);
    if (why) return why;
  }
  for (const entry of selector.matchArgs ?? []) {
    const why = argEntryRejects(spec, entry, expected);
    if (why) return why;
  }
  return undefined;
}

/** Why no selector of the hook can let the expected event through; undefined when one may (or there are none). */
export function selectorsReject(spec: Spec | undefined, expected: ExpectedEvent): string | undefined {
  if (!specHasSelectors(spec)) return undefined;
  const whys: string[] = [];
  for (const [i, selector] of (spec!.selectors as Selector[]).entries()) {
    const why = selectorRejects(spec!, selector, expected);
    if (!why) return undefined;
    whys.push(`selectors[${i}]: ${why}`);
  }
  return whys.join('; ');
}

/** Can some selector of the hook let the expected event through? */
export function selectorsMayPass(spec: Spec | undefined, expected: ExpectedEvent): boolean {
  return selectorsReject(spec, expected) === undefined;
}
