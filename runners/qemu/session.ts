/**
 * What a suite gives a QEMU cell: guest files (step scripts and their data) for each
 * boot, and a reader of the guest's records that returns finished checks as they
 * arrive. A suite whose work does not fit one guest asks for more boots of the cell;
 * boot 0 is shared with the other suites, the others carry only the suites that asked.
 */
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import type { GuestRecord } from './protocol.js';
import type { GuestOutcome } from './vm.js';

/** A file the suite puts into the guest's overlay archive. */
export interface GuestFile {
  path: string;
  content?: string | Buffer;
  /** A host file copied as is (an agent's binary): not read into memory, not compressed. */
  from?: string;
  mode?: number;
}

export interface QemuSession {
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

declare module '../../core/platform.js' {
  interface PlatformSessions {
    qemu: QemuSession;
  }
}
