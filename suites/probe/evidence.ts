/**
 * Reading the guest's probe records: kernel facts, ring buffer creation, and
 * attach-then-count results. Pure functions over GuestRecord, shared by the probe
 * suite and the bug reproductions.
 */
import type { Reason } from '../../core/reasons.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';

export interface KernelFacts {
  release: string;
  machine: string;
  pageKiB: number;
  lsm: string[];
  cmdline: string;
  btf: boolean;
  tracefs: boolean;
  bpftool: string;
}

export function readFacts(record: GuestRecord): KernelFacts {
  const body = new Map<string, string>();
  for (const line of record.body.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) body.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return {
    release: record.header.release ?? '',
    machine: record.header.machine ?? '',
    pageKiB: Number(record.header.page_kib ?? 0),
    lsm: (body.get('lsm') ?? '').split(',').filter(Boolean),
    cmdline: body.get('cmdline') ?? '',
    btf: record.header.btf === 'yes',
    tracefs: record.header.tracefs === 'yes',
    bpftool: body.get('bpftool') ?? '',
  };
}

/** The probe objects built from guest/bpf/*.bpf.c, by the feature each one measures. */
export const PROBE_FEATURES = {
  kprobe: 'kprobe',
  kmulti: 'kprobe-multi',
  fentry: 'fentry',
  fmodret: 'fmod-ret',
  lsm: 'lsm',
  override: 'override-return',
  tailcall: 'kprobe-multi-tailcall',
  tracepoint: 'tracepoint',
  umulti: 'uprobe-multi',
  utailcall: 'uprobe-multi-tailcall',
} as const;

export type ProbeObject = keyof typeof PROBE_FEATURES;
export type ProbeFeature = (typeof PROBE_FEATURES)[ProbeObject];

export const RINGBUF_SIZES = [4096, 16384, 65536] as const;

export interface AttachResult {
  object: string;
  feature: string;
  attached: boolean;
  exitCode: number;
  hits: number | undefined;
  /** The line that says why, when it failed: libbpf's own line, not bpftool's summary (P5). */
  error: string | undefined;
  errno: number | undefined;
  output: string;
}

/** bpftool prints "does not support autoattach, falling back to pinning"; the cause is libbpf's line before it. */
function causeLine(output: string): string | undefined {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  return (
    lines.find((l) => /^libbpf: prog '[^']+': failed to attach/.test(l)) ??
    lines.find((l) => /unknown func|cannot use helper|invalid func/.test(l)) ??
    lines.find((l) => l.startsWith('libbpf:') && /fail|error/i.test(l)) ??
    lines.find((l) => l.startsWith('Error:'))
  );
}

/** An `attach` record: the loader's output in its body, the counter dump in its `attach-hits` part. */
export function readAttach(record: GuestRecord): AttachResult {
  const object = record.header.prog ?? '?';
  const exitCode = Number(record.header.rc ?? -1);
  const output = record.body;
  let hits: number | undefined;
  if (exitCode === 0) {
    try {
      hits = counterValue(JSON.parse(record.parts?.['attach-hits']?.body ?? ''));
    } catch {
      hits = undefined;
    }
  }
  const error = exitCode === 0 ? undefined : causeLine(output);
  const errnoMatch = error?.match(/\(-?(\d+)\)\s*$/) ?? error?.match(/error \(-(\d+)\)/);
  return {
    object,
    feature: PROBE_FEATURES[object as ProbeObject] ?? object,
    attached: exitCode === 0,
    exitCode,
    hits,
    error,
    errno: errnoMatch ? Number(errnoMatch[1]) : undefined,
    output: output.trim(),
  };
}

/**
 * The counter from `bpftool -j map dump`: with BTF it is `formatted.value`; without,
 * `value` is a list of little-endian hex bytes.
 */
export function counterValue(dump: unknown): number | undefined {
  const entry = Array.isArray(dump) ? (dump[0] as { value?: unknown; formatted?: { value?: unknown } } | undefined) : undefined;
  if (!entry) return undefined;
  if (typeof entry.formatted?.value === 'number') return entry.formatted.value;
  if (typeof entry.value === 'number') return entry.value;
  if (Array.isArray(entry.value) && entry.value.every((b) => typeof b === 'string')) {
    return (entry.value as string[]).reduceRight((acc, byte) => acc * 256 + Number.parseInt(byte, 16), 0);
  }
  return undefined;
}

/** Why an attach failed, as a reason code. 524 is ENOTSUPP: no trampoline on this kernel. */
export function attachFailureReason(a: AttachResult): Reason {
  const text = `${a.error ?? ''}\n${a.output}`;
  if (a.object === 'override' && /bpf_override_return/.test(text)) return 'override-unsupported';
  if (/-524\b|\(-524\)|error \(-524\)/.test(text)) return 'trampoline-unsupported';
  if ((a.object === 'kmulti' || a.object === 'tailcall') && /Operation not supported|-95\b/.test(text)) return 'kprobe-multi-unsupported';
  // Kernels before 6.6 do not know the uprobe_multi link type: EINVAL at attach, not EOPNOTSUPP.
  if ((a.object === 'umulti' || a.object === 'utailcall') && /Operation not supported|-95\b|failed to attach multi-uprobe: Invalid argument/.test(text)) return 'uprobe-multi-unsupported';
  // Refused at load, not attach: the second program that uses the map has another expected attach type.
  if ((a.object === 'tailcall' || a.object === 'utailcall') && /failed to load|load program/i.test(text) && /-22\b|Invalid argument/.test(text)) return 'tailcall-attach-type';
  if (a.object === 'lsm' && /-22\b|Invalid argument/.test(text)) return 'lsm-unsupported';
  if (a.object === 'tracepoint' && /No such file|-2\b/.test(text)) return 'tracepoint-missing';
  if (a.object === 'kprobe' && /No such file|-2\b/.test(text)) return 'symbol-missing';
  return 'attach-failed';
}

export interface RingbufResult {
  size: number;
  ok: boolean;
  error: string | undefined;
}

export function readRingbuf(record: GuestRecord): RingbufResult {
  const ok = record.header.rc === '0';
  return { size: Number(record.header.size), ok, error: ok ? undefined : record.body.trim() || `exit ${record.header.rc}` };
}

/**
 * Whether this kernel lets a multi program (kprobe.multi, uprobe.multi) share a tail-call map
 * with single probes, as an agent with multi links needs (the tailcall / utailcall objects),
 * given whether the multi link itself attached. Not a verdict of a policy's hooks: evidence
 * the prediction check reads against an agent that attaches through the multi link.
 */
export type MixedTailCalls = 'works' | 'refused' | 'no-multi-link';

/** The probes that mix a multi link with single probes in one tail-call map: the multi probe each mixes in, and the kind. */
export const TAILCALL_PROBES = {
  tailcall: { multi: 'kmulti', kind: 'kprobe' },
  utailcall: { multi: 'umulti', kind: 'uprobe' },
} as const;

/** The tail-call pairing of a probe object, when it is one of TAILCALL_PROBES. */
export function tailcallProbe(object: string): (typeof TAILCALL_PROBES)[keyof typeof TAILCALL_PROBES] | undefined {
  return Object.hasOwn(TAILCALL_PROBES, object) ? TAILCALL_PROBES[object as keyof typeof TAILCALL_PROBES] : undefined;
}

export function mixedTailCalls(multiAttached: boolean | undefined, mixed: AttachResult): MixedTailCalls | undefined {
  if (multiAttached === false) return 'no-multi-link';
  if (!mixed.attached) return attachFailureReason(mixed) === 'tailcall-attach-type' ? 'refused' : undefined;
  return (mixed.hits ?? 0) > 0 ? 'works' : undefined;
}
