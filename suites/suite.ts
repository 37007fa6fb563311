/**
 * What a suite is. A static suite answers from the policy files and the cell's
 * description alone. A VM suite adds step scripts to the guest, turns the guest's
 * records into checks as they arrive, and names its checks before the boot so that
 * `--resume` can skip a finished cell and a dead guest can be charged per check.
 */
import type { CheckResult, Lane } from '../core/check.js';
import type { Cell } from '../matrix/cell.js';
import type { Policy, PolicyProblem } from '../policy/model.js';
import type { GuestOutcome } from '../runners/qemu/vm.js';
import type { GuestRecord } from '../runners/qemu/protocol.js';

/** A finished check before the runner stamps cell, lane and suite on it. */
export type CheckDraft = Omit<CheckResult, 'cell' | 'lane' | 'suite'>;

/** A planned check: its identity, known before the guest boots. */
export type PlannedCheck = Pick<CheckResult, 'subject' | 'check'> & Partial<Pick<CheckResult, 'source'>>;

/** Everything a suite may read about a cell. */
export interface CellContext {
  cell: Cell;
  policies: Policy[];
  /** Problems of each policy document (schema-invalid), empty for a valid one. */
  policyProblems: Map<Policy, PolicyProblem[]>;
  /** Files that are not valid YAML: they have no policy to hang their problem on. */
  fileProblems: PolicyProblem[];
  /** Kernel config options of the cell's kernel, when the kernel has been fetched. */
  kernelConfig?: Map<string, string>;
  /** Unique subject name of each policy (see suites/subjects.ts). */
  subjects: Map<Policy, string>;
  /** The accelerator the cell's guests run on, once chosen. */
  accel?: 'kvm' | 'tcg';
}

export interface StaticSuite {
  kind: 'static';
  name: string;
  lane: Lane;
  run(ctx: CellContext): CheckDraft[];
}

/** A file the suite puts into the guest's overlay archive. */
export interface GuestFile {
  path: string;
  content?: string | Buffer;
  /** A host file copied as is (a Tetragon binary): not read into memory, not compressed. */
  from?: string;
  mode?: number;
}

/**
 * Per-cell state of a VM suite: it consumes the guest's records and emits checks. A
 * suite whose work does not fit one guest spreads it over several boots of the cell
 * (`boots()`); boot 0 is shared with the other suites, the others carry only the
 * suites that asked for them. They may run at the same time.
 */
export interface VmSuiteSession {
  /** Boots of this cell the suite needs (default 1). */
  boots?(): number;
  /** The guest files of one boot: step scripts go to /bpfgate/steps/NN-name.sh and run in name order. */
  guestFiles(boot: number): GuestFile[];
  /** Kernel command line additions the suite needs. */
  bootArgs?(): string[];
  /** Guest memory the suite needs (the largest wins; default 1024 MiB). */
  memoryMiB?(): number;
  planned(): PlannedCheck[];
  /** Called for every record of a boot, in order; returns the checks it finished. */
  onRecord(record: GuestRecord, boot: number): CheckDraft[];
  /** Called once after a boot's guest ended (done, timeout or exit). */
  finish(outcome: GuestOutcome, boot: number): CheckDraft[];
  /** Called once after every boot of the cell ended: checks that need all of them. */
  complete?(): CheckDraft[];
}

export interface VmSuite {
  kind: 'vm';
  name: string;
  lane: Lane;
  /** Guest time this suite adds, on top of the boot, under TCG. */
  budgetMs: number;
  session(ctx: CellContext): VmSuiteSession;
  /** Checks derived after the cell from all of its results (every suite's), e.g. prediction against reality. */
  derive?(cell: Cell, results: CheckResult[]): CheckDraft[];
}

export type Suite = StaticSuite | VmSuite;
