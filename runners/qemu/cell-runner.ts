/**
 * One QEMU cell: build each boot's overlay from the suites' guest files, boot it,
 * and turn the guest's records into checks as they arrive (each is on disk before
 * the next one starts). One boot serves every suite; a suite whose work does not
 * fit one guest asks for more boots of the cell, which run through the same job
 * limit as the other cells. Whatever a suite planned and no guest answered is
 * charged to the infrastructure, with the console tail as evidence.
 */
import { copyFile, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckStatus } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';
import type { CheckDraft, CellContext, GuestFile, VmSuite, VmSuiteSession } from '../../suites/suite.js';
import { findSplats } from './dmesg.js';
import { buildOverlay } from './guest-image.js';
import type { GuestRecord } from './protocol.js';
import { bootGuest, type Accel, type GuestOutcome } from './vm.js';

/** Boot-level checks that every QEMU cell reports, whatever the suites. */
export const BOOT_SUITE = 'boot';

export interface QemuCellOptions {
  ctx: CellContext;
  suites: VmSuite[];
  kernelImage: string;
  baseInitrd: string;
  accel: Accel;
  timeoutMs: number;
  /** out/cells/<cell>: serial.log goes here. */
  cellDir: string;
  /** Scratch space for the overlay and the combined initrd. */
  workDir: string;
  /** True when the check is already on disk (--resume): it is neither run again nor written. */
  done(suite: string, subject: string, check: string): boolean;
  /** Writes one finished check (the store appends and fsyncs). */
  record(suite: VmSuite | typeof BOOT_SUITE, draft: CheckDraft): void;
  onPhase?(phase: string, detail?: string): void;
  /** Runs one boot when a job slot is free (the run's p-limit); default: at once. */
  schedule?<T>(boot: () => Promise<T>): Promise<T>;
}

interface Boot {
  index: number;
  count: number;
  sessions: { suite: VmSuite; session: VmSuiteSession }[];
}

/**
 * Concatenated cpio archives: the kernel unpacks them in order, the overlay last. It
 * skips zero bytes between archives and takes a plain (uncompressed) archive only at a
 * 4-byte aligned offset, so the base is padded to 4 bytes first.
 */
async function combineInitrd(base: string, overlay: string, out: string): Promise<void> {
  await copyFile(base, out);
  const handle = await open(out, 'a');
  try {
    const { size } = await handle.stat();
    if (size % 4) await handle.write(Buffer.alloc(4 - (size % 4)));
    await handle.write(await readFile(overlay));
  } finally {
    await handle.close();
  }
}

function infraReason(outcome: GuestOutcome): Reason {
  if (outcome.status === 'timeout') return 'infra-boot-timeout';
  if (outcome.status === 'exited') return 'infra-boot-failed';
  return 'infra-guest-protocol';
}

function tailLines(text: string, n: number): string {
  return text.split('\n').filter((l) => l.trim()).slice(-n).join('\n');
}

/** Boot 0 keeps the names it always had; the others say which boot they were. */
function bootName(base: string, boot: Boot): string {
  return boot.index === 0 ? base : `${base} (boot ${boot.index + 1} of ${boot.count})`;
}

export async function runQemuCell(opts: QemuCellOptions): Promise<GuestOutcome> {
  const { ctx, suites } = opts;
  const sessions = suites.map((suite) => ({ suite, session: suite.session(ctx) }));
  const written = new Set<string>();
  const keyOf = (suite: string, d: { subject: string; check: string }) => `${suite}\u0000${d.subject}\u0000${d.check}`;
  const emit = (suite: VmSuite | typeof BOOT_SUITE, draft: CheckDraft) => {
    const name = typeof suite === 'string' ? suite : suite.name;
    const key = keyOf(name, draft);
    if (written.has(key) || opts.done(name, draft.subject, draft.check)) return;
    written.add(key);
    opts.record(suite, draft);
  };

  const count = Math.max(1, ...sessions.map(({ session }) => session.boots?.() ?? 1));
  const boots: Boot[] = Array.from({ length: count }, (_, index) => ({
    index,
    count,
    sessions: sessions.filter(({ session }) => (session.boots?.() ?? 1) > index),
  }));
  const schedule = opts.schedule ?? (<T>(boot: () => Promise<T>) => boot());
  const outcomes = await Promise.all(boots.map((boot) => schedule(() => runBoot(opts, boot, emit))));

  for (const { suite, session } of sessions) {
    for (const draft of session.complete?.() ?? []) emit(suite, draft);
  }
  // Unanswered planned checks are infrastructure errors, never passes or silent gaps.
  const failed = outcomes.find((o) => o.outcome.status !== 'done' || o.outcome.problems.length > 0);
  for (const { suite, session } of sessions) {
    for (const planned of session.planned()) {
      emit(suite, {
        ...planned,
        status: 'error',
        reason: failed ? infraReason(failed.outcome) : 'infra-guest-protocol',
        evidence: { ...(failed ?? outcomes[0]!).evidence, missing: 'the guest never answered this check' },
        durationMs: 0,
      });
    }
  }
  return (failed ?? outcomes[0]!).outcome;
}

async function runBoot(
  opts: QemuCellOptions,
  boot: Boot,
  emit: (suite: VmSuite | typeof BOOT_SUITE, draft: CheckDraft) => void,
): Promise<{ outcome: GuestOutcome; evidence: Record<string, unknown> }> {
  const { ctx } = opts;
  const { sessions } = boot;
  const suffix = boot.index === 0 ? '' : `-${boot.index + 1}`;
  const files: GuestFile[] = sessions.flatMap(({ session }) => session.guestFiles(boot.index));
  const bootArgs = sessions.flatMap(({ session }) => session.bootArgs?.() ?? []);
  const workDir = `${opts.workDir}${suffix}`;
  await mkdir(workDir, { recursive: true });
  await mkdir(opts.cellDir, { recursive: true });
  const overlay = join(workDir, 'overlay.cpio.gz');
  const initrd = join(workDir, 'initrd.img');
  // Large host files (an agent's binaries) go in uncompressed: gzip would cost more than it saves under TCG.
  await buildOverlay(files, overlay, { compress: !files.some((f) => f.from !== undefined) });
  const memoryMiB = Math.max(1024, ...sessions.map(({ session }) => session.memoryMiB?.() ?? 0));
  await combineInitrd(opts.baseInitrd, overlay, initrd);

  opts.onPhase?.('boot', boot.count > 1 ? `${opts.accel}, boot ${boot.index + 1} of ${boot.count}` : opts.accel);
  let dmesg: string | undefined;
  let release: string | undefined;
  const onRecord = (record: GuestRecord) => {
    if (record.type === 'dmesg') dmesg = record.body;
    if (record.type === 'facts') release = record.header.release;
    if (record.type === 'step-start') opts.onPhase?.('step', record.header.name);
    for (const { suite, session } of sessions) {
      for (const draft of session.onRecord(record, boot.index)) emit(suite, draft);
    }
  };
  const started = Date.now();
  const serialLog = join(opts.cellDir, `serial${suffix}.log`);
  const outcome = await bootGuest(
    {
      arch: ctx.cell.arch,
      kernel: opts.kernelImage,
      initrd,
      append: [...ctx.cell.bootArgs, ...bootArgs],
      accel: opts.accel,
      timeoutMs: opts.timeoutMs,
      serialLog,
      memoryMiB,
    },
    onRecord,
  );

  for (const { suite, session } of sessions) {
    for (const draft of session.finish(outcome, boot.index)) emit(suite, draft);
  }

  const finished = outcome.status === 'done' && outcome.problems.length === 0;
  const evidence = {
    accel: opts.accel,
    status: outcome.status,
    wallMs: outcome.wallMs,
    ...(release ? { release } : {}),
    ...(boot.count > 1 ? { boot: `${boot.index + 1} of ${boot.count}`, suites: sessions.map(({ suite }) => suite.name) } : {}),
    ...(outcome.problems.length ? { protocolProblems: outcome.problems } : {}),
    ...(finished ? {} : { exitCode: outcome.exitCode, consoleTail: tailLines(outcome.consoleTail, 25) }),
    serialLog,
  };
  const bootStatus: CheckStatus = finished ? 'pass' : 'error';
  emit(BOOT_SUITE, {
    subject: bootName('kernel', boot),
    check: 'boot',
    status: bootStatus,
    reason: finished ? null : infraReason(outcome),
    evidence,
    durationMs: Date.now() - started,
  });
  if (dmesg !== undefined) {
    const splats = findSplats(dmesg);
    emit(BOOT_SUITE, {
      subject: bootName('kernel', boot),
      check: 'dmesg',
      status: splats.length ? 'fail' : 'pass',
      reason: splats.length ? 'dmesg-splat' : null,
      evidence: splats.length ? { splats: splats.slice(0, 10) } : { lines: dmesg.split('\n').length },
      durationMs: 0,
    });
  }
  return { outcome, evidence };
}
