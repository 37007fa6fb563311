/**
 * Prediction against reality: where the kernel lane (policies suite) and an agent
 * (tetragon suite) both ran on a cell, every policy whose kernel-lane verdict and
 * agent load state disagree. That is where either bpfgate or Tetragon is wrong. A
 * cross check: it reads the two suites' results of the cell and nothing else.
 */
import type { CheckDraft, CheckResult } from '../../core/check.js';
import type { CrossCheck } from '../../core/suite.js';
import type { Cell } from '../../matrix/cell.js';

export function comparePrediction(cell: Cell, results: readonly CheckResult[]): CheckDraft[] {
  const mine = results.filter((r) => r.cell === cell.id);
  const out: CheckDraft[] = [];
  for (const load of mine.filter((r) => r.check === 'tetragon:load')) {
    const kernel = mine.find((r) => r.subject === load.subject && r.check === 'hooks');
    // Nothing to compare where either lane has no verdict (an infra error, a skip).
    if (!kernel || load.status === 'error' || load.status === 'skip' || kernel.status === 'error') continue;
    const kernelSaysWorks = kernel.status === 'pass' || kernel.reason === 'untested' || kernel.reason === 'not-fired';
    const agentLoaded = load.status === 'pass';
    // lsm-inactive policies load fine and never fire; a policy with no hooks loads and attaches nothing.
    const kernelSaysLoads = kernelSaysWorks || kernel.reason === 'lsm-inactive' || kernel.reason === 'no-hooks';
    // The probe step measured that this kernel refuses kprobe.multi and kprobe programs in one
    // tail-call map; an agent that attaches this policy's kprobes through kprobe.multi mixes them.
    const mixesRefused =
      (kernel.evidence.kprobeMultiTailCalls === 'refused' && load.evidence.kprobeMulti === true) ||
      (kernel.evidence.uprobeMultiTailCalls === 'refused' && load.evidence.uprobeMulti === true);
    const predicted = !kernelSaysLoads ? kernel.reason : mixesRefused ? 'tailcall-attach-type' : null;
    const agree = predicted === null ? agentLoaded : !agentLoaded && (predicted !== 'tailcall-attach-type' || load.reason === 'tailcall-attach-type');
    out.push({
      subject: load.subject,
      check: 'prediction',
      status: agree ? 'pass' : 'fail',
      reason: agree ? null : (agentLoaded ? predicted : load.reason),
      evidence: {
        predicted: predicted ?? 'loads',
        kernelLane: {
          status: kernel.status,
          reason: kernel.reason,
          ...(kernel.evidence.kprobeMultiTailCalls ? { kprobeMultiTailCalls: kernel.evidence.kprobeMultiTailCalls } : {}),
          ...(kernel.evidence.uprobeMultiTailCalls ? { uprobeMultiTailCalls: kernel.evidence.uprobeMultiTailCalls } : {}),
        },
        tetragon: { status: load.status, reason: load.reason, ...load.evidence },
      },
      durationMs: 0,
      ...(load.source ? { source: load.source } : {}),
    });
  }
  return out;
}

/** Filed under the tetragon suite, as the agent's half of the comparison. */
export const predictionCheck: CrossCheck = {
  suite: 'tetragon',
  lane: 'tetragon-vm',
  needs: ['policies', 'tetragon'],
  judge: comparePrediction,
};
