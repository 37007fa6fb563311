/**
 * The probe suite: what the kernel itself allows, measured in the guest.
 * Each BPF feature is judged by attaching a program and counting the times it ran;
 * attached-but-never-ran is a failure with its own reason (lsm-inactive), never a pass.
 */
import { readFileSync } from 'node:fs';
import { assetPath } from '../../core/assets.js';
import type { Reason } from '../../core/reasons.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { CellContext, CheckDraft, PlannedCheck, VmSuite, VmSuiteSession } from '../suite.js';
import {
  PROBE_FEATURES,
  RINGBUF_SIZES,
  attachFailureReason,
  readAttach,
  readFacts,
  readRingbuf,
  type KernelFacts,
} from './evidence.js';

/** Kernel config options that decide the BPF features; reported beside the measurements. */
export const CONFIG_OPTIONS = [
  'CONFIG_BPF_LSM',
  'CONFIG_LSM',
  'CONFIG_DEBUG_INFO_BTF',
  'CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS',
  'CONFIG_FUNCTION_ERROR_INJECTION',
  'CONFIG_BPF_KPROBE_OVERRIDE',
  'CONFIG_FPROBE',
  'CONFIG_KPROBES',
  'CONFIG_UPROBES',
  'CONFIG_FTRACE_SYSCALLS',
  'CONFIG_BPF_JIT',
  'CONFIG_IKCONFIG_PROC',
] as const;

const FACTS_CHECK = { subject: 'kernel', check: 'facts' } as const;

function plannedChecks(): PlannedCheck[] {
  return [
    FACTS_CHECK,
    ...RINGBUF_SIZES.map((n) => ({ subject: `ringbuf-${n}`, check: 'feature' })),
    ...Object.values(PROBE_FEATURES).map((f) => ({ subject: f, check: 'feature' })),
  ];
}

export class ProbeSession implements VmSuiteSession {
  private facts: KernelFacts | undefined;
  private last = Date.now();

  constructor(private readonly ctx: CellContext) {}

  guestFiles() {
    return [probeStepFile()];
  }

  planned(): PlannedCheck[] {
    return plannedChecks();
  }

  /** Time since the previous check of this cell: the guest does them one after another. */
  private elapsed(): number {
    const now = Date.now();
    const ms = now - this.last;
    this.last = now;
    return ms;
  }

  onRecord(record: GuestRecord): CheckDraft[] {
    switch (record.type) {
      case 'facts':
        return [this.factsCheck(record)];
      case 'ringbuf':
        return [this.ringbufCheck(record)];
      case 'attach':
        return [this.attachCheck(record)];
      case 'step-start':
        this.last = Date.now();
        return [];
      default:
        return [];
    }
  }

  finish(): CheckDraft[] {
    return [];
  }

  private factsCheck(record: GuestRecord): CheckDraft {
    this.facts = readFacts(record);
    const config: Record<string, string> = {};
    for (const option of CONFIG_OPTIONS) config[option] = this.ctx.kernelConfig?.get(option) ?? 'absent';
    const expectedPage = this.ctx.cell.pageSize;
    const pageOk = this.facts.pageKiB === expectedPage;
    return {
      ...FACTS_CHECK,
      status: pageOk ? 'pass' : 'fail',
      reason: pageOk ? null : 'infra-kernel-invalid',
      evidence: { ...this.facts, expectedPageKiB: expectedPage, bpfLsmActive: this.facts.lsm.includes('bpf'), config },
      durationMs: this.elapsed(),
    };
  }

  private ringbufCheck(record: GuestRecord): CheckDraft {
    const r = readRingbuf(record);
    const pageBytes = (this.facts?.pageKiB ?? this.ctx.cell.pageSize) * 1024;
    let reason: Reason | null = null;
    if (!r.ok) reason = r.size < pageBytes ? 'ringbuf-pagesize' : 'attach-failed';
    return {
      subject: `ringbuf-${r.size}`,
      check: 'feature',
      status: r.ok ? 'pass' : 'fail',
      reason,
      evidence: { sizeBytes: r.size, pageBytes, created: r.ok, ...(r.error ? { error: r.error } : {}) },
      durationMs: this.elapsed(),
    };
  }

  private attachCheck(record: GuestRecord): CheckDraft {
    const a = readAttach(record);
    const lsm = this.facts?.lsm ?? [];
    const evidence: Record<string, unknown> = { object: `${a.object}.bpf.o`, attached: a.attached };
    if (a.hits !== undefined) evidence.hits = a.hits;
    if (a.error) evidence.error = a.error;
    if (a.errno !== undefined) evidence.errno = a.errno;
    if (a.feature === 'lsm') evidence.activeLsm = lsm.join(',');
    let status: CheckDraft['status'] = 'pass';
    let reason: Reason | null = null;
    if (!a.attached) {
      status = 'fail';
      reason = attachFailureReason(a);
      evidence.output = a.output.split('\n').slice(-12).join('\n');
    } else if (a.hits === undefined) {
      // Attached but the counter could not be read: inconclusive, never a pass.
      status = 'error';
      reason = 'infra-guest-protocol';
      evidence.output = a.output;
    } else if (a.hits === 0) {
      status = 'fail';
      reason = a.feature === 'lsm' && !lsm.includes('bpf') ? 'lsm-inactive' : 'not-fired';
    }
    return { subject: a.feature, check: 'feature', status, reason, evidence, durationMs: this.elapsed() };
  }
}

/** The guest step shared with the reproductions. */
export function probeStepFile() {
  return { path: '/bpfgate/steps/10-probe.sh', content: readFileSync(assetPath('suites', 'probe', 'guest', 'probe.sh')) };
}

export const probeSuite: VmSuite = {
  kind: 'vm',
  name: 'probe',
  lane: 'kernel',
  budgetMs: 30_000,
  session: (ctx) => new ProbeSession(ctx),
};
