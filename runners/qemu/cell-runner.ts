/**
 * One QEMU cell: build its overlay from the suites' guest files, boot it once,
 * and turn the guest's records into checks as they arrive (each is on disk
 * before the next one starts). Whatever a suite planned and the guest never
 * answered is charged to the infrastructure, with the console tail as evidence.
 */
import { copyFile, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckStatus } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';
import type { CellContext, CheckDraft, GuestFile, VmSuite } from '../../suites/suite.js';
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

  const files: GuestFile[] = sessions.flatMap(({ session }) => session.guestFiles());
  const bootArgs = sessions.flatMap(({ session }) => session.bootArgs?.() ?? []);
  await mkdir(opts.workDir, { recursive: true });
  await mkdir(opts.cellDir, { recursive: true });
  const overlay = join(opts.workDir, 'overlay.cpio.gz');
  const initrd = join(opts.workDir, 'initrd.img');
  // Large host files (an agent's binaries) go in uncompressed: gzip would cost more than it saves under TCG.
  await buildOverlay(files, overlay, { compress: !files.some((f) => f.from !== undefined) });
  const memoryMiB = Math.max(1024, ...sessions.map(({ session }) => session.memoryMiB?.() ?? 0));
  await combineInitrd(opts.baseInitrd, overlay, initrd);

  opts.onPhase?.('boot', opts.accel);
  let dmesg: string | undefined;
  let release: string | undefined;
  const onRecord = (record: GuestRecord) => {
    if (record.type === 'dmesg') dmesg = record.body;
    if (record.type === 'facts') release = record.header.release;
    if (record.type === 'step-start') opts.onPhase?.('step', record.header.name);
    for (const { suite, session } of sessions) {
      for (const draft of session.onRecord(record)) emit(suite, draft);
    }
  };
  const started = Date.now();
  const outcome = await bootGuest(
    {
      arch: ctx.cell.arch,
      kernel: opts.kernelImage,
      initrd,
      append: [...ctx.cell.bootArgs, ...bootArgs],
      accel: opts.accel,
      timeoutMs: opts.timeoutMs,
      serialLog: join(opts.cellDir, 'serial.log'),
      memoryMiB,
    },
    onRecord,
  );

  for (const { suite, session } of sessions) {
    for (const draft of session.finish(outcome)) emit(suite, draft);
  }

  const finished = outcome.status === 'done' && outcome.problems.length === 0;
  const evidence = {
    accel: opts.accel,
    status: outcome.status,
    wallMs: outcome.wallMs,
    ...(release ? { release } : {}),
    ...(outcome.problems.length ? { protocolProblems: outcome.problems } : {}),
    ...(finished ? {} : { exitCode: outcome.exitCode, consoleTail: tailLines(outcome.consoleTail, 25) }),
    serialLog: join(opts.cellDir, 'serial.log'),
  };
  // Unanswered planned checks are infrastructure errors, never passes or silent gaps.
  for (const { suite, session } of sessions) {
    for (const planned of session.planned()) {
      emit(suite, {
        ...planned,
        status: 'error',
        reason: finished ? 'infra-guest-protocol' : infraReason(outcome),
        evidence: { ...evidence, missing: 'the guest never answered this check' },
        durationMs: 0,
      });
    }
  }
  const bootStatus: CheckStatus = finished ? 'pass' : 'error';
  emit(BOOT_SUITE, {
    subject: 'kernel',
    check: 'boot',
    status: bootStatus,
    reason: finished ? null : infraReason(outcome),
    evidence,
    durationMs: Date.now() - started,
  });
  if (dmesg !== undefined) {
    const splats = findSplats(dmesg);
    emit(BOOT_SUITE, {
      subject: 'kernel',
      check: 'dmesg',
      status: splats.length ? 'fail' : 'pass',
      reason: splats.length ? 'dmesg-splat' : null,
      evidence: splats.length ? { splats: splats.slice(0, 10) } : { lines: dmesg.split('\n').length },
      durationMs: 0,
    });
  }
  return outcome;
}
