/**
 * Tetragon's JSON export, read into typed events.
 *
 * The export is one protojson `GetEventsResponse` per line, with the proto field names
 * (snake_case): exactly one event key (the oneof, `process_exec` … `rate_limit_info`)
 * beside the envelope (`node_name`, `time`, `aggregation_info`, `cluster_name`,
 * `node_labels`). Shapes follow api/v1/tetragon/{events,tetragon}.proto.
 *
 * Invariants:
 * - An event key this module does not know (older or enterprise types such as
 *   `process_connect`) is kept as the event's `type` with `known: false`; it never fails.
 * - A line that is not JSON, not an object, has no event key, or whose known fields have
 *   the wrong JSON type is an InputError naming the file, the 1-based line and what was
 *   expected. `readExport` can collect those instead of throwing, because the agent's
 *   export file ends in a torn line when the guest powers off mid-write.
 * - Absent strings read as `''` (proto3 omits empty strings, so absent and empty are one value).
 */
import { readFile } from 'node:fs/promises';
import { InputError } from '../../core/errors.js';

/** The event keys of the OSS `GetEventsResponse` oneof (events.proto). */
export const EVENT_TYPES = [
  'process_exec',
  'process_exit',
  'process_kprobe',
  'process_tracepoint',
  'process_loader',
  'process_uprobe',
  'process_throttle',
  'process_lsm',
  'process_usdt',
  'rate_limit_info',
  'test',
] as const;

export type KnownEventType = (typeof EVENT_TYPES)[number];

/** Top-level fields beside the event key. */
export const ENVELOPE_FIELDS = ['node_name', 'time', 'aggregation_info', 'cluster_name', 'node_labels'] as const;

/**
 * One exported KprobeArgument: a oneof (`string_arg`, `int_arg`, `file_arg{path,…}`,
 * `sock_arg{…}`, `bytes_arg` (base64), …) plus an optional `label`. Kept as exported:
 * int64/uint64 values arrive as strings, as protojson prints them.
 */
export type ExportedArgument = Record<string, unknown>;

export interface EventContainer {
  id: string;
  name: string;
  image?: { id: string; name: string };
}

export interface EventPod {
  namespace: string;
  name: string;
  workload: string;
  workload_kind: string;
  container?: EventContainer;
  pod_labels?: Record<string, string>;
}

/** The fields of a `Process` that checks use; everything else stays in `raw`. */
export interface EventProcess {
  exec_id: string;
  /** Host PID namespace; protojson prints the UInt32Value wrapper as a number. */
  pid: number | undefined;
  uid: number | undefined;
  cwd: string;
  binary: string;
  arguments: string;
  flags: string;
  parent_exec_id: string;
  pod?: EventPod;
}

/** One exported event. Fields absent from the event's type are left undefined. */
export interface TetragonEvent {
  /** The event key: one of EVENT_TYPES when `known`, anything else otherwise. */
  type: string;
  known: boolean;
  /** The whole line as parsed (envelope included). */
  raw: Record<string, unknown>;
  /** `raw[type]`: the event message itself. */
  body: Record<string, unknown>;
  file: string;
  /** 1-based line of the export (for a pretty-printed document: where it starts). */
  line: number;
  /** RFC 3339 timestamp from the envelope; '' when absent. */
  time: string;
  /** '' when absent. */
  node_name: string;
  process?: EventProcess;
  parent?: EventProcess;
  /** kprobe, lsm, uprobe: the hooked function or LSM hook, as exported (`__x64_sys_write`, `file_open`). */
  function_name?: string;
  /** tracepoint */
  subsys?: string;
  /** tracepoint */
  event?: string;
  policy_name?: string;
  args?: ExportedArgument[];
  /** kprobe: the return value, itself a KprobeArgument. */
  return?: ExportedArgument;
  /** `KPROBE_ACTION_*` */
  action?: string;
  return_action?: string;
  message?: string;
  tags?: string[];
  /** uprobe, usdt, loader: the binary or library path. */
  path?: string;
  /** uprobe */
  symbol?: string;
  /** usdt */
  provider?: string;
  /** usdt probe name */
  name?: string;
  /** exit */
  signal?: string;
  /** exit */
  status?: number;
  /** throttle: THROTTLE_START or THROTTLE_STOP */
  throttle?: string;
  /** throttle */
  cgroup?: string;
}

const KNOWN = new Set<string>(EVENT_TYPES);
const ENVELOPE = new Set<string>(ENVELOPE_FIELDS);
const CODE = 'export-invalid';

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Reads typed fields of one line; every failure names the file, the line and the field. */
class FieldReader {
  constructor(
    private readonly file: string,
    private readonly line: number,
  ) {}

  fail(message: string): never {
    throw new InputError(CODE, this.file, { line: this.line }, message);
  }

  string(o: JsonObject, key: string, where: string): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(`${where}.${key}: expected a string, got ${kindOf(v)}`);
    return v;
  }

  /** A uint32 (or a wrapper of one): a number, or a decimal string as some encoders print it. */
  uint(o: JsonObject, key: string, where: string): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
    return this.fail(`${where}.${key}: expected an integer, got ${kindOf(v)}`);
  }

  object(o: JsonObject, key: string, where: string): JsonObject | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) this.fail(`${where}.${key}: expected an object, got ${kindOf(v)}`);
    return v;
  }

  objects(o: JsonObject, key: string, where: string): JsonObject[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.fail(`${where}.${key}: expected a list, got ${kindOf(v)}`);
    v.forEach((item, i) => {
      if (!isObject(item)) this.fail(`${where}.${key}[${i}]: expected an object, got ${kindOf(item)}`);
    });
    return v as JsonObject[];
  }

  strings(o: JsonObject, key: string, where: string): string[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) this.fail(`${where}.${key}: expected a list of strings`);
    return v as string[];
  }

  process(o: JsonObject, key: 'process' | 'parent', where: string): EventProcess | undefined {
    const p = this.object(o, key, where);
    if (!p) return undefined;
    const at = `${where}.${key}`;
    const out: EventProcess = {
      exec_id: this.string(p, 'exec_id', at) ?? '',
      pid: this.uint(p, 'pid', at),
      uid: this.uint(p, 'uid', at),
      cwd: this.string(p, 'cwd', at) ?? '',
      binary: this.string(p, 'binary', at) ?? '',
      arguments: this.string(p, 'arguments', at) ?? '',
      flags: this.string(p, 'flags', at) ?? '',
      parent_exec_id: this.string(p, 'parent_exec_id', at) ?? '',
    };
    const pod = this.pod(p, `${at}`);
    if (pod) out.pod = pod;
    return out;
  }

  private pod(p: JsonObject, where: string): EventPod | undefined {
    const pod = this.object(p, 'pod', where);
    if (!pod) return undefined;
    const at = `${where}.pod`;
    const out: EventPod = {
      namespace: this.string(pod, 'namespace', at) ?? '',
      name: this.string(pod, 'name', at) ?? '',
      workload: this.string(pod, 'workload', at) ?? '',
      workload_kind: this.string(pod, 'workload_kind', at) ?? '',
    };
    const c = this.object(pod, 'container', at);
    if (c) {
      const cat = `${at}.container`;
      out.container = { id: this.string(c, 'id', cat) ?? '', name: this.string(c, 'name', cat) ?? '' };
      const image = this.object(c, 'image', cat);
      if (image) out.container.image = { id: this.string(image, 'id', `${cat}.image`) ?? '', name: this.string(image, 'name', `${cat}.image`) ?? '' };
    }
    const labels = this.object(pod, 'pod_labels', at);
    if (labels) {
      for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string') this.fail(`${at}.pod_labels.${k}: expected a string, got ${kindOf(v)}`);
      out.pod_labels = labels as Record<string, string>;
    }
    return out;
  }
}

/** Which key of the line is the event: the one known key, else the one unknown object-valued key. */
function eventKey(o: JsonObject, r: FieldReader): { type: string; known: boolean } {
  const keys = Object.keys(o).filter((k) => !ENVELOPE.has(k));
  const known = keys.filter((k) => KNOWN.has(k));
  if (known.length > 1) r.fail(`expected exactly one event key, found ${known.join(', ')}`);
  if (known.length === 1) return { type: known[0]!, known: true };
  // Unknown keys are tolerated as long as one of them is unambiguously an event message.
  const candidates = keys.filter((k) => isObject(o[k]));
  if (candidates.length === 1) return { type: candidates[0]!, known: false };
  if (candidates.length > 1) r.fail(`expected exactly one event key, found ${candidates.join(', ')}`);
  return r.fail(`expected an event key (one of ${EVENT_TYPES.join(', ')}), found ${Object.keys(o).length ? Object.keys(o).join(', ') : 'an empty object'}`);
}

/**
 * Turn one parsed `GetEventsResponse` object into a TetragonEvent. Also serves
 * pretty-printed single-event documents (give the line the object starts on).
 */
export function eventFromJson(value: unknown, file: string, line: number): TetragonEvent {
  const r: FieldReader = new FieldReader(file, line);
  if (!isObject(value)) r.fail(`expected a JSON object (one GetEventsResponse), got ${kindOf(value)}`);
  const { type, known } = eventKey(value, r);
  const body = value[type];
  if (!isObject(body)) return r.fail(`${type}: expected an object, got ${kindOf(body)}`);
  const event: TetragonEvent = {
    type,
    known,
    raw: value,
    body,
    file,
    line,
    time: r.string(value, 'time', '(line)') ?? '',
    node_name: r.string(value, 'node_name', '(line)') ?? '',
  };
  // An unknown type keeps its process and parent only when they have the shape of a Process:
  // its message is not ours to judge, so a different shape drops them instead of failing.
  for (const key of ['process', 'parent'] as const) {
    try {
      const p = r.process(body, key, type);
      if (p) event[key] = p;
    } catch (err) {
      if (known || !(err instanceof InputError)) throw err;
    }
  }
  if (!known) return event;

  const set = <K extends keyof TetragonEvent>(key: K, v: TetragonEvent[K] | undefined): void => {
    if (v !== undefined) event[key] = v;
  };
  switch (type as KnownEventType) {
    case 'process_kprobe':
    case 'process_lsm':
    case 'process_tracepoint':
    case 'process_uprobe':
    case 'process_usdt':
      set('function_name', r.string(body, 'function_name', type));
      set('subsys', r.string(body, 'subsys', type));
      set('event', r.string(body, 'event', type));
      set('policy_name', r.string(body, 'policy_name', type));
      set('args', r.objects(body, 'args', type));
      set('return', r.object(body, 'return', type));
      set('action', r.string(body, 'action', type));
      set('return_action', r.string(body, 'return_action', type));
      set('message', r.string(body, 'message', type));
      set('tags', r.strings(body, 'tags', type));
      set('path', r.string(body, 'path', type));
      set('symbol', r.string(body, 'symbol', type));
      set('provider', r.string(body, 'provider', type));
      set('name', r.string(body, 'name', type));
      break;
    case 'process_exit':
      set('signal', r.string(body, 'signal', type));
      set('status', r.uint(body, 'status', type));
      break;
    case 'process_loader':
      set('path', r.string(body, 'path', type));
      break;
    case 'process_throttle':
      set('throttle', r.string(body, 'type', type));
      set('cgroup', r.string(body, 'cgroup', type));
      break;
    default:
      break;
  }
  return event;
}

/** Where JSON.parse stopped, as a 1-based column, when its message says. */
function jsonColumn(err: Error): number | undefined {
  const m = /position (\d+)/.exec(err.message);
  return m ? Number(m[1]) + 1 : undefined;
}

/** Parse one line of the export. A blank line, non-JSON or a line with no event key is an InputError. */
export function parseExportLine(text: string, file: string, line: number): TetragonEvent {
  const trimmed = text.trim();
  if (trimmed === '') throw new InputError(CODE, file, { line }, 'expected a JSON object (one GetEventsResponse), got an empty line');
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (cause) {
    const err = cause as Error;
    const column = jsonColumn(err);
    throw new InputError(
      CODE,
      file,
      column === undefined ? { line } : { line, column },
      `expected a JSON object (one GetEventsResponse), got text that is not JSON: ${err.message}`,
      cause,
    );
  }
  return eventFromJson(value, file, line);
}

export interface ReadExportOptions {
  /** Collect bad lines in `problems` instead of throwing at the first one. */
  tolerant?: boolean;
}

export interface ExportRead {
  events: TetragonEvent[];
  /** Bad lines, in order (tolerant mode only; strict mode throws the first). */
  problems: InputError[];
  /** The last line had no newline and did not parse: the writer stopped mid-line. */
  tornLastLine: boolean;
}

/** Read a whole export (JSON lines). Blank lines are skipped; line numbers count them. */
export function readExport(text: string, file: string, options: ReadExportOptions = {}): ExportRead {
  const out: ExportRead = { events: [], problems: [], tornLastLine: false };
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const isUnterminatedLast = i === lines.length - 1;
    try {
      out.events.push(parseExportLine(line, file, i + 1));
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      // Only a last line that is cut short (not JSON, no newline after it) is torn.
      const torn = isUnterminatedLast && err.cause instanceof SyntaxError;
      const problem = torn
        ? new InputError(CODE, file, { line: err.line ?? i + 1, column: err.column ?? 1 }, `torn last line (no newline at the end; the writer stopped mid-event): ${stripWhere(err)}`, err)
        : err;
      if (!options.tolerant) throw problem;
      out.problems.push(problem);
      if (torn) out.tornLastLine = true;
    }
  });
  return out;
}

/** The message of an InputError without its `file:line:col: ` prefix. */
function stripWhere(err: InputError): string {
  const prefix = err.line === undefined ? `${err.file}: ` : `${err.file}:${err.line}:${err.column ?? 1}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

/** Read an export file from disk; a missing or unreadable file is an InputError. */
export async function readExportFile(path: string, options: ReadExportOptions = {}): Promise<ExportRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new InputError(CODE, path, {}, `cannot read the Tetragon export: ${(cause as Error).message}`, cause);
  }
  return readExport(text, path, options);
}

// ---- one-line summaries for evidence ----

const MAX_TEXT = 60;
const MAX_SUMMARY = 400;

function clip(s: string, max = MAX_TEXT): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The oneof key of an argument (its `label` aside). */
export function argumentKind(arg: ExportedArgument): string | undefined {
  return Object.keys(arg).find((k) => k !== 'label');
}

/** A short text for one exported argument: the path of a file, the endpoints of a socket, the value of a scalar. */
export function summarizeArgument(arg: ExportedArgument): string {
  const kind = argumentKind(arg);
  if (kind === undefined) return '(empty)';
  const v = arg[kind];
  if (kind === 'bytes_arg' && typeof v === 'string') return `<${Buffer.from(v, 'base64').length} bytes>`;
  if (typeof v === 'string') return JSON.stringify(clip(v));
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (isObject(v)) {
    if (typeof v.path === 'string') return JSON.stringify(clip(v.path));
    if (typeof v.daddr === 'string' || typeof v.saddr === 'string') {
      const end = (a: unknown, p: unknown): string => `${typeof a === 'string' ? a : '?'}:${p === undefined ? '0' : String(p)}`;
      return `${end(v.saddr, v.sport)}->${end(v.daddr, v.dport)}`;
    }
    if (typeof v.name === 'string') return JSON.stringify(clip(v.name));
  }
  return clip(JSON.stringify(v) ?? String(v));
}

/**
 * One line for evidence, e.g.
 * `process_kprobe __x64_sys_write by /usr/bin/vi "/etc/passwd" ["etc/passwd", <627 bytes>, "627"] policy=… action=POST`.
 */
export function summarizeEvent(event: TetragonEvent): string {
  const parts: string[] = [event.type];
  if (event.function_name) parts.push(event.function_name);
  if (event.subsys || event.event) parts.push(`${event.subsys ?? ''}/${event.event ?? ''}`);
  if (event.type === 'process_uprobe' && event.path) parts.push(`${event.path}:${event.symbol ?? ''}`);
  if (event.type === 'process_usdt') parts.push(`${event.path ?? ''}:${event.provider ?? ''}:${event.name ?? ''}`);
  if (event.type === 'process_loader' && event.path) parts.push(event.path);
  if (event.throttle) parts.push(`${event.throttle} ${event.cgroup ?? ''}`.trim());
  if (event.process) {
    parts.push(`by ${event.process.binary || '(unknown binary)'}`);
    if (event.process.arguments) parts.push(JSON.stringify(clip(event.process.arguments)));
    if (event.process.pod) parts.push(`pod=${event.process.pod.namespace}/${event.process.pod.name}`);
  }
  if (event.args && event.args.length > 0) parts.push(`[${event.args.map(summarizeArgument).join(', ')}]`);
  if (event.return) parts.push(`return=${summarizeArgument(event.return)}`);
  if (event.type === 'process_exit' && (event.signal || event.status !== undefined)) parts.push(event.signal ? `signal=${event.signal}` : `status=${event.status}`);
  if (event.policy_name) parts.push(`policy=${event.policy_name}`);
  if (event.action) parts.push(`action=${event.action.replace(/^KPROBE_ACTION_/, '')}`);
  return clip(parts.join(' '), MAX_SUMMARY);
}
