/**
 * The probe suite: what the kernel itself allows, measured in the guest.
 * Each BPF feature is judged by attaching a program and counting the times it ran;
 * attached-but-never-ran is a failure with its own reason (lsm-inactive), never a pass.
 */
import { readFileSync } from 'node:fs';
import { assetPath } from '../../core/assets.js';
import type { Reason } from '../../core/reasons.js';
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import type { CellContext, LiveSuite } from '../../core/suite.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { GuestFile, QemuSession } from '../../runners/qemu/session.js';
import {
  PROBE_FEATURES,
  RINGBUF_SIZES,
  attachFailureReason,
  mixedTailCalls,
  readAttach,
  readFacts,
  readRingbuf,
  tailcallProbe,
  type AttachResult,
  type KernelFacts,
} from './evidence.js';

const FACTS_CHECK = { subject: 'kernel', check: 'facts' } as const;

function plannedChecks(): PlannedCheck[] {
  return [
    FACTS_CHECK,
    ...RINGBUF_SIZES.map((n) => ({ subject: `ringbuf-${n}`, check: 'feature' })),
    ...Object.values(PROBE_FEATURES).map((f) => ({ subject: f, check: 'feature' })),
  ];
}

export class ProbeSession implements QemuSession {
  private facts: KernelFacts | undefined;
  /** Earlier attach results of this boot (the objects run in name order: kmulti before tailcall, umulti before utailcall). */
  private readonly attaches = new Map<string, AttachResult>();
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

  /**
   * What the guest measured against the facts gathered before the boot: a page size or
   * an LSM list other than the kernel's own config and boot parameters imply means the
   * facts every suite planned with were wrong, and no verdict of the cell can be trusted.
   */
  private factsCheck(record: GuestRecord): CheckDraft {
    this.facts = readFacts(record);
    const expected = this.ctx.facts;
    const differences: string[] = [];
    if (this.facts.pageKiB !== expected.pageKiB) differences.push(`page size ${this.facts.pageKiB}K, expected ${expected.pageKiB}K`);
    if (this.facts.lsm.join(',') !== expected.lsm.join(',')) differences.push(`active LSMs ${this.facts.lsm.join(',')}, expected ${expected.lsm.join(',')}`);
    // A user's kernel file may not say its exact release; a Debian package always does.
    if (expected.kernel.package && this.facts.release !== expected.kernel.release) {
      differences.push(`release ${this.facts.release}, expected ${expected.kernel.release}`);
    }
    return {
      ...FACTS_CHECK,
      status: differences.length ? 'fail' : 'pass',
      reason: differences.length ? 'facts-mismatch' : null,
      evidence: {
        ...this.facts,
        expectedPageKiB: expected.pageKiB,
        bpfLsmActive: this.facts.lsm.includes('bpf'),
        config: expected.config,
        ...(differences.length ? { differences, expectedLsm: expected.lsm, expectedRelease: expected.kernel.release } : {}),
      },
      durationMs: this.elapsed(),
    };
  }

  private ringbufCheck(record: GuestRecord): CheckDraft {
    const r = readRingbuf(record);
    const pageBytes = (this.facts?.pageKiB ?? this.ctx.facts.pageKiB) * 1024;
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
    this.attaches.set(a.object, a);
    const lsm = this.facts?.lsm ?? [];
    const evidence: Record<string, unknown> = { object: `${a.object}.bpf.o`, attached: a.attached };
    if (a.hits !== undefined) evidence.hits = a.hits;
    if (a.error) evidence.error = a.error;
    if (a.errno !== undefined) evidence.errno = a.errno;
    if (a.feature === 'lsm') evidence.activeLsm = lsm.join(',');
    let status: CheckDraft['status'] = 'pass';
    let reason: Reason | null = null;
    const pair = tailcallProbe(a.object);
    const multi = pair && this.attaches.get(pair.multi);
    if (pair && multi && mixedTailCalls(multi.attached, a) === 'no-multi-link') {
      const { kind } = pair;
      // No multi link here: an agent attaches single probes and shares no map across attach types.
      const refused = attachFailureReason(a) === 'tailcall-attach-type';
      return {
        subject: a.feature, check: 'feature', status: 'skip', reason: null,
        evidence: { ...evidence, why: `${kind}.multi does not attach on this cell, so no agent mixes it with ${kind}s in one tail-call map`, ...(refused ? { kernelRefusesMixedTailCalls: true } : {}) },
        durationMs: this.elapsed(),
      };
    }
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
export function probeStepFile(): GuestFile {
  return { path: '/bpfgate/steps/10-probe.sh', content: readFileSync(assetPath('suites', 'probe', 'guest', 'probe.sh')) };
}

export const probeSuite: LiveSuite = {
  kind: 'live',
  name: 'probe',
  lane: 'kernel',
  budgetMs: 30_000,
  sessions: { qemu: (ctx) => new ProbeSession(ctx) },
};
