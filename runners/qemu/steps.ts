/**
 * The guest's steps, as its records tell them. /init runs every /bpfgate/steps/*.sh as a
 * child and brackets it with `step-start name=NN-x.sh` and `step-end name=NN-x.sh rc=N
 * uptime=S`; when rc is not 0 the step-end body is the end (2 KiB at most) of what the
 * step printed on stdout and stderr. A step that exits, dies of `set -e` or has a syntax
 * error fails alone: the boot goes on with the next step. Pure functions over records, so
 * the runner can tell which suite's step failed and show its output on the checks the
 * step owed.
 */
import type { GuestRecord } from './protocol.js';

/** Where a suite puts its step scripts; init runs them in name order. */
export const STEP_DIR = '/bpfgate/steps/';

export interface StepFailure {
  /** The step's file name, e.g. `20-policies.sh`. */
  step: string;
  /** Its exit status; undefined when it started and never ended (the guest died or hung in it). */
  rc: number | undefined;
  /** The end of its stdout and stderr (empty for a step that never ended: its output stayed in the guest). */
  output: string;
  /** Guest uptime in seconds when it ended. */
  uptime?: number;
}

/** The steps of a boot that failed or never ended, in the order they ran. */
export function failedSteps(records: readonly GuestRecord[]): StepFailure[] {
  const out: StepFailure[] = [];
  let open: string | undefined;
  for (const r of records) {
    if (r.type === 'step-start') {
      open = r.header.name;
      continue;
    }
    if (r.type !== 'step-end') continue;
    if (r.header.name === open) open = undefined;
    const rc = Number(r.header.rc);
    if (r.header.rc === undefined || rc === 0) continue;
    out.push({
      step: r.header.name ?? '?',
      rc: Number.isFinite(rc) ? rc : undefined,
      output: r.body,
      ...(r.header.uptime ? { uptime: Number(r.header.uptime) } : {}),
    });
  }
  if (open !== undefined) out.push({ step: open, rc: undefined, output: '' });
  return out;
}

/** The step scripts among a suite's guest files, by file name (`20-policies.sh`). */
export function stepNames(files: readonly { path: string }[]): string[] {
  return files.filter((f) => f.path.startsWith(STEP_DIR) && f.path.endsWith('.sh')).map((f) => f.path.slice(STEP_DIR.length));
}

/**
 * Evidence for a check a suite planned and no record answered: the failed steps among the
 * suite's own (all failed steps when `own` is not given), with rc and output. Empty when
 * none failed, so it can be spread into the evidence as it is.
 */
export function stepFailureEvidence(failures: readonly StepFailure[], own?: readonly string[]): { failedSteps?: StepFailure[] } {
  const mine = own ? failures.filter((f) => own.includes(f.step)) : [...failures];
  return mine.length ? { failedSteps: mine } : {};
}
