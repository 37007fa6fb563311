/**
 * The named bug reproductions. A kernel bug says, per cell, whether it must show or
 * must not, and how to see it in the guest's probe records; a runtime bug runs on the
 * host's own container runtime (the containerd platform) and judges what its
 * experiment saw (cri-socket.ts). A reproduction holds only when the bug shows
 * everywhere it must AND nowhere it must not.
 */
import { kernelAtLeast, kernelVersion, type CellFacts } from '../../core/facts.js';
import type { Reason } from '../../core/reasons.js';
import type { Cell } from '../../matrix/cell.js';
import { attachFailureReason, type AttachResult, type KernelFacts, type RingbufResult } from '../probe/evidence.js';
import { CRI_SOCKET_STALE } from './cri-socket.js';

/** What the guest reported that the bugs are judged on. */
export interface ProbeObservations {
  facts?: KernelFacts;
  ringbufs: Map<number, RingbufResult>;
  attaches: Map<string, AttachResult>;
  /** `bpftool feature probe` lines, when the step ran it. */
  featureProbe?: string;
}

export type Expectation = 'shows' | 'absent';

export interface Observation {
  /** undefined: the records do not decide it (inconclusive, never a pass). */
  shows: boolean | undefined;
  evidence: Record<string, unknown>;
}

interface BugInfo {
  name: string;
  title: string;
  reason: Reason;
  /** One line of a check's evidence for `bpfgate repro` (default: the first telling evidence keys). */
  summary?(evidence: Record<string, unknown>): string;
}

/** A bug of the kernel, judged on QEMU cells from the probe step's records. */
export interface KernelBug extends BugInfo {
  kind: 'kernel';
  /** Whether the bug must show on a cell with these facts; undefined when the cell cannot tell. */
  expect(facts: Readonly<CellFacts>, config: ReadonlyMap<string, string>): Expectation | undefined;
  observe(o: ProbeObservations): Observation;
  /** Cells where `bpftool feature probe` also runs, to record what it claims beside what attaching shows. */
  wantsFeatureProbe?(cell: Cell): boolean;
}

/** A bug of a container runtime, reproduced on the host cell of the containerd platform; one check per `checks` entry. */
export interface RuntimeBug extends BugInfo {
  kind: 'runtime';
  /** The checks it answers (its subject is the bug's name). */
  checks: readonly string[];
}

export type Bug = KernelBug | RuntimeBug;


const attachEvidence = (a: AttachResult | undefined) =>
  a ? { attached: a.attached, ...(a.hits !== undefined ? { hits: a.hits } : {}), ...(a.error ? { error: a.error } : {}) } : { missing: true };

export const KERNEL_BUGS: KernelBug[] = [
  {
    kind: 'kernel',
    name: 'ringbuf-pagesize',
    title: 'a 4096-byte BPF ring buffer is refused (EINVAL) on 16K pages, accepted on 4K',
    reason: 'ringbuf-pagesize',
    expect: (facts) => (facts.pageKiB > 4 ? 'shows' : 'absent'),
    observe: (o) => {
      const rb = o.ringbufs.get(4096);
      if (!rb) return { shows: undefined, evidence: { missing: 'ringbuf 4096 record' } };
      const einval = !rb.ok && /Invalid argument/.test(rb.error ?? '');
      return {
        shows: rb.ok ? false : einval ? true : undefined,
        evidence: { pageKiB: o.facts?.pageKiB, ringbuf4096: rb.ok ? 'created' : rb.error, ringbuf16384: o.ringbufs.get(16384)?.ok ? 'created' : o.ringbufs.get(16384)?.error },
      };
    },
  },
  {
    kind: 'kernel',
    name: 'lsm-inactive',
    title: 'with bpf missing from the active LSM list an LSM program attaches and never runs',
    reason: 'lsm-inactive',
    expect: (facts, config) => {
      // Where trampolines are missing, LSM programs cannot even attach: the bug cannot be seen.
      if (config.get('CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS') !== 'y') return undefined;
      return facts.lsm.includes('bpf') ? 'absent' : 'shows';
    },
    observe: (o) => {
      const lsm = o.attaches.get('lsm');
      const active = o.facts?.lsm ?? [];
      const evidence = { activeLsm: active.join(','), lsm: attachEvidence(lsm) };
      if (!lsm?.attached || lsm.hits === undefined) return { shows: undefined, evidence };
      return { shows: lsm.hits === 0 && !active.includes('bpf'), evidence };
    },
  },
  {
    kind: 'kernel',
    name: 'arm64-trampoline',
    title: 'fentry, fmod_ret and LSM attach fail with 524 on arm64 before 6.4 (no DYNAMIC_FTRACE_WITH_DIRECT_CALLS), while bpftool feature probe calls them available',
    reason: 'trampoline-unsupported',
    // The probe costs 1-3 s per boot; its claim matters where the trap is: arm64.
    wantsFeatureProbe: (cell) => cell.arch === 'arm64',
    expect: (facts) => {
      return facts.arch === 'arm64' && !kernelAtLeast(facts.kernel.release, 6, 4) ? 'shows' : 'absent';
    },
    observe: (o) => {
      const objects = ['fentry', 'fmodret', 'lsm'];
      const results = objects.map((n) => o.attaches.get(n));
      const evidence: Record<string, unknown> = Object.fromEntries(objects.map((n, i) => [n, attachEvidence(results[i])]));
      if (o.featureProbe !== undefined) evidence.featureProbeSays = o.featureProbe.split('\n').filter((l) => /lsm|tracing/.test(l));
      if (results.some((r) => r === undefined)) return { shows: undefined, evidence };
      const all524 = results.every((r) => !r!.attached && /-524|\(524\)/.test(`${r!.error ?? ''} ${r!.output}`));
      const allAttach = results.every((r) => r!.attached);
      return { shows: all524 ? true : allAttach ? false : undefined, evidence };
    },
  },
  {
    kind: 'kernel',
    name: 'tailcall-attach-type',
    title: 'a kprobe.multi program and a kprobe program may not share a tail-call map on kernels with the attach-type enforcement (6.12.53+); Tetragon v1.5.0\'s multi-kprobe sensor does that',
    reason: 'tailcall-attach-type',
    summary: (e) => {
      const say = (v: unknown) => {
        const a = v as { attached?: boolean; hits?: number; error?: string; missing?: boolean } | undefined;
        if (!a || a.missing) return 'no record';
        return a.attached ? `attached${a.hits !== undefined ? `, ${a.hits} hits` : ''}` : `refused: ${a.error ?? 'see the output'}`;
      };
      const agent = e.agent ? `; agent: ${String(e.agent)}` : '';
      return `kprobe.multi ${say(e.kprobeMulti)}; kprobe sharing its tail-call map ${say(e.mixedTailCalls)}${agent}`;
    },
    expect: (facts, config) => {
      // Without kprobe.multi no agent mixes the two attach types: the bug cannot hurt here.
      if (config.get('CONFIG_FPROBE') !== 'y') return 'absent';
      return enforcesTailcallAttachType(facts);
    },
    observe: (o) => {
      const multi = o.attaches.get('kmulti');
      const mixed = o.attaches.get('tailcall');
      const evidence: Record<string, unknown> = { kprobeMulti: attachEvidence(multi), mixedTailCalls: attachEvidence(mixed) };
      if (!multi || !mixed) return { shows: undefined, evidence };
      if (!multi.attached) return { shows: false, evidence };
      if (mixed.attached) return { shows: mixed.hits === undefined ? undefined : false, evidence };
      return { shows: attachFailureReason(mixed) === 'tailcall-attach-type' ? true : undefined, evidence };
    },
  },
];

/**
 * Upstream commit 4540aed51b12 ("bpf: Enforce expected_attach_type for tailcall
 * compatibility", CVE-2025-40123) is in 6.18 and in the 6.12 stable line from 6.12.53
 * (Debian 6.12.57-1). Other lines: the version alone does not say, the measurement does.
 */
export function enforcesTailcallAttachType(facts: Readonly<CellFacts>): Expectation | undefined {
  const version = facts.kernel.version ?? facts.kernel.release;
  if (kernelAtLeast(version, 6, 18)) return 'shows';
  const [major, minor, patch] = kernelVersion(version);
  if (major === 6 && minor === 12) return patch >= 53 ? 'shows' : 'absent';
  return undefined;
}


/** Every named bug: the kernel ones (QEMU cells), then the runtime ones (the host-containerd cell). */
export const BUGS: Bug[] = [...KERNEL_BUGS, CRI_SOCKET_STALE];

export function findBug(name: string): Bug | undefined {
  return BUGS.find((b) => b.name === name);
}
