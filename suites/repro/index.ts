/**
 * The repro suite: boots each cell with the probe step and judges every named
 * kernel bug on it (the runtime bugs run on the host: cri-socket.ts). One check per bug and cell: pass when the cell behaves as the bug
 * says it must (shows where expected, absent elsewhere), with the evidence.
 */
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import type { CellContext, LiveSuite } from '../../core/suite.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { GuestFile, QemuSession } from '../../runners/qemu/session.js';
import { probeStepFile } from '../probe/index.js';
import { readAttach, readFacts, readRingbuf } from '../probe/evidence.js';
import { KERNEL_BUGS, type KernelBug, type ProbeObservations } from './bugs.js';

class ReproSession implements QemuSession {
  private readonly seen: ProbeObservations = { ringbufs: new Map(), attaches: new Map() };
  private readonly started = Date.now();

  constructor(private readonly ctx: CellContext, private readonly bugs: KernelBug[]) {}

  guestFiles() {
    const files: GuestFile[] = [probeStepFile()];
    if (this.bugs.some((b) => b.wantsFeatureProbe?.(this.ctx.cell))) {
      // Steps run as children: a setting for a later step goes through init's env file.
      files.push({ path: '/bpfgate/steps/05-feature-probe.sh', content: 'echo BPFGATE_FEATURE_PROBE=1 >> "$BPFGATE_ENV"\n' });
    }
    return files;
  }

  planned(): PlannedCheck[] {
    return this.bugs.map((b) => ({ subject: b.name, check: 'repro' }));
  }

  onRecord(record: GuestRecord): CheckDraft[] {
    if (record.type === 'facts') this.seen.facts = readFacts(record);
    if (record.type === 'ringbuf') {
      const r = readRingbuf(record);
      this.seen.ringbufs.set(r.size, r);
    }
    if (record.type === 'attach') {
      const a = readAttach(record);
      this.seen.attaches.set(a.object, a);
    }
    if (record.type === 'feature-probe') this.seen.featureProbe = record.body;
    return [];
  }

  finish(): CheckDraft[] {
    if (!this.seen.facts) return []; // the guest never spoke: the runner charges the planned checks
    const out: CheckDraft[] = [];
    for (const bug of this.bugs) {
      const expected = bug.expect(this.ctx.facts, this.ctx.config);
      const observed = bug.observe(this.seen);
      const base = { subject: bug.name, check: 'repro', durationMs: Date.now() - this.started };
      if (expected === undefined) {
        out.push({ ...base, status: 'skip', reason: null, evidence: { why: 'this cell cannot show or rule out the bug', ...observed.evidence } });
      } else if (observed.shows === undefined) {
        out.push({ ...base, status: 'error', reason: 'infra-guest-protocol', evidence: { expected, observed: 'inconclusive', ...observed.evidence } });
      } else {
        const as = observed.shows ? 'shows' : 'absent';
        const ok = as === expected;
        out.push({
          ...base,
          status: ok ? 'pass' : 'fail',
          reason: observed.shows || !ok ? bug.reason : null,
          evidence: { expected, observed: as, verdict: ok ? (observed.shows ? 'reproduced' : 'absent as expected') : 'not reproduced', ...observed.evidence },
        });
      }
    }
    return out;
  }
}

export function reproSuite(bugs: KernelBug[] = KERNEL_BUGS): LiveSuite {
  return {
    kind: 'live',
    name: 'repro',
    lane: 'kernel',
    budgetMs: 35_000,
    sessions: { qemu: (ctx) => new ReproSession(ctx, bugs) },
  };
}
