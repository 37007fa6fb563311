/**
 * One QEMU cell: build each boot's overlay from the sessions' guest files, boot it,
 * and turn the guest's records into checks as they arrive (each is on disk before
 * the next one starts). One boot serves every suite; a suite whose work does not
 * fit one guest asks for more boots of the cell, which run through the same job
 * limit as the other cells. Whatever a session planned and no guest answered is
 * charged to the infrastructure, with the console tail as evidence; after an
 * interrupt nothing more is written, so `--resume` runs exactly what is missing.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckDraft, CheckStatus } from '../../core/check.js';
import type { CellSink, DescribedCell, SuiteSession } from '../../core/platform.js';
import type { Reason } from '../../core/reasons.js';
import { findSplats } from './dmesg.js';
import { buildOverlay, combineInitrd } from './guest-image.js';
import type { GuestRecord } from './protocol.js';
import type { GuestFile, QemuSession } from './session.js';
import { failedSteps, stepFailureEvidence, stepNames, type StepFailure } from './steps.js';
import { bootGuest, type Accel, type GuestOutcome } from './vm.js';

/** Boot-level checks that every QEMU cell reports, whatever the suites. */
export const BOOT_SUITE = 'boot';
const BOOT_LANE = 'kernel';

export interface QemuCellOptions {
  described: DescribedCell;
  sessions: SuiteSession<QemuSession>[];
  kernelImage: string;
  baseInitrd: string;
  accel: Accel;
  timeoutMs: number;
  /** out/cells/<cell>: serial.log goes here. */
  cellDir: string;
  /** Scratch space for the overlays and the combined initrds. */
  workDir: string;
  sink: CellSink;
  signal?: AbortSignal;
  onPhase?(phase: string, detail?: string): void;
  /** Runs one boot when a job slot is free (the run's p-limit); default: at once. */
  schedule?<T>(boot: () => Promise<T>): Promise<T>;
}

interface Boot {
  index: number;
  count: number;
  sessions: SuiteSession<QemuSession>[];
}

interface BootEnd {
  outcome: GuestOutcome;
  evidence: Record<string, unknown>;
  /** Steps that failed or never ended, and which suite's they were. */
  failures: StepFailure[];
  steps: Map<string, string[]>;
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

/** Writes a session's check unless it is on disk already, written this run, or the run was interrupted. */
function emitter(opts: QemuCellOptions) {
  const written = new Set<string>();
  return (suite: string, lane: SuiteSession<QemuSession>['lane'], draft: CheckDraft) => {
    if (opts.signal?.aborted) return;
    const key = `${suite}\u0000${draft.subject}\u0000${draft.check}`;
    if (written.has(key) || opts.sink.done(suite, lane, draft.subject, draft.check)) return;
    written.add(key);
    opts.sink.record(suite, lane, draft);
  };
}

type Emit = ReturnType<typeof emitter>;

/** A cell whose facts could not be gathered: every planned check is charged to that, nothing boots. */
export function chargeUnbootable(opts: Pick<QemuCellOptions, 'described' | 'sessions' | 'sink'>, reason: Reason, evidence: Record<string, unknown>): void {
  const emit = emitter(opts as QemuCellOptions);
  for (const { suite, lane, session } of opts.sessions) {
    for (const planned of session.planned()) emit(suite, lane, { ...planned, status: 'error', reason, evidence, durationMs: 0 });
  }
  emit(BOOT_SUITE, BOOT_LANE, { subject: 'kernel', check: 'boot', status: 'error', reason, evidence, durationMs: 0 });
}

/** Every planned check and the boot check on disk already (--resume): the cell is not booted again. */
export function cellIsDone(sessions: SuiteSession<QemuSession>[], sink: CellSink): boolean {
  return (
    sink.done(BOOT_SUITE, BOOT_LANE, 'kernel', 'boot') &&
    sessions.every(({ suite, lane, session }) => session.planned().every((p) => sink.done(suite, lane, p.subject, p.check)))
  );
}

export async function runQemuCell(opts: QemuCellOptions): Promise<GuestOutcome> {
  const { sessions } = opts;
  const emit = emitter(opts);
  const count = Math.max(1, ...sessions.map(({ session }) => session.boots?.() ?? 1));
  const boots: Boot[] = Array.from({ length: count }, (_, index) => ({
    index,
    count,
    sessions: sessions.filter(({ session }) => (session.boots?.() ?? 1) > index),
  }));
  const schedule = opts.schedule ?? (<T>(boot: () => Promise<T>) => boot());
  // A boot that throws is rethrown only once its siblings have ended: they write into the same
  // scratch directory, which is removed next, and their own failure must not hide the first one.
  const settled = await Promise.allSettled(boots.map((boot) => schedule(() => runBoot(opts, boot, emit))));
  const thrown = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (thrown) throw thrown.reason;
  const outcomes = settled.map((s) => (s as PromiseFulfilledResult<Awaited<ReturnType<typeof runBoot>>>).value);
  if (opts.signal?.aborted) return outcomes[0]!.outcome;

  for (const { suite, lane, session } of sessions) {
    for (const draft of session.complete?.() ?? []) emit(suite, lane, draft);
  }
  // Unanswered planned checks are infrastructure errors, never passes or silent gaps; a
  // step of the suite that failed is named with its exit status and output.
  const failed = outcomes.find((o) => o.outcome.status !== 'done' || o.outcome.problems.length > 0);
  const failures = outcomes.flatMap((o) => o.failures);
  for (const { suite, lane, session } of sessions) {
    const own = outcomes.flatMap((o) => o.steps.get(suite) ?? []);
    for (const planned of session.planned()) {
      emit(suite, lane, {
        ...planned,
        status: 'error',
        reason: failed ? infraReason(failed.outcome) : 'infra-guest-protocol',
        evidence: { ...(failed ?? outcomes[0]!).evidence, ...stepFailureEvidence(failures, own), missing: 'the guest never answered this check' },
        durationMs: 0,
      });
    }
  }
  return (failed ?? outcomes[0]!).outcome;
}

async function runBoot(opts: QemuCellOptions, boot: Boot, emit: Emit): Promise<BootEnd> {
  const { cell } = opts.described;
  const { sessions } = boot;
  const started = Date.now();
  const suffix = boot.index === 0 ? '' : `-${boot.index + 1}`;
  const bySession = sessions.map(({ suite, session }) => ({ suite, files: session.guestFiles(boot.index) }));
  const files: GuestFile[] = bySession.flatMap((s) => s.files);
  const steps = new Map(bySession.map((s) => [s.suite, stepNames(s.files)] as const));
  const bootArgs = sessions.flatMap(({ session }) => session.bootArgs?.() ?? []);
  const workDir = join(opts.workDir, `boot${boot.index + 1}`);
  await mkdir(workDir, { recursive: true });
  await mkdir(opts.cellDir, { recursive: true });
  const overlay = join(workDir, 'overlay.cpio.gz');
  const initrd = join(workDir, 'initrd.img');
  // Large host files (an agent's binaries) go in uncompressed: gzip would cost more than it saves under TCG.
  await buildOverlay(files, overlay, { compress: !files.some((f) => f.from !== undefined) });
  const memoryMiB = Math.max(1024, ...sessions.map(({ session }) => session.memoryMiB?.() ?? 0));
  await combineInitrd(opts.baseInitrd, overlay, initrd);
  const hostBeforeMs = Date.now() - started;

  opts.onPhase?.('boot', boot.count > 1 ? `${opts.accel}, boot ${boot.index + 1} of ${boot.count}` : opts.accel);
  let dmesg: string | undefined;
  let release: string | undefined;
  const onRecord = (record: GuestRecord) => {
    if (record.type === 'dmesg') dmesg = record.body;
    if (record.type === 'facts') release = record.header.release;
    if (record.type === 'step-start') opts.onPhase?.('step', record.header.name);
    for (const { suite, lane, session } of sessions) {
      for (const draft of session.onRecord(record, boot.index)) emit(suite, lane, draft);
    }
  };
  const serialLog = join(opts.cellDir, `serial${suffix}.log`);
  const outcome = await bootGuest(
    {
      arch: cell.arch,
      kernel: opts.kernelImage,
      initrd,
      append: [...cell.bootArgs, ...bootArgs],
      accel: opts.accel,
      timeoutMs: opts.timeoutMs,
      serialLog,
      memoryMiB,
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
    onRecord,
  );
  const guestEnded = Date.now();
  if (opts.signal?.aborted) return { outcome, evidence: {}, failures: [], steps };

  for (const { suite, lane, session } of sessions) {
    for (const draft of session.finish(outcome, boot.index)) emit(suite, lane, draft);
  }
  // A step that exited non-zero failed alone (init runs each as a child): say so under its suite.
  const failures = failedSteps(outcome.records);
  for (const f of failures) {
    if (f.rc === undefined) continue; // never ended: the boot's own outcome says why
    const owner = sessions.find(({ suite }) => steps.get(suite)?.includes(f.step));
    if (!owner) continue;
    emit(owner.suite, owner.lane, {
      subject: bootName(`step ${f.step}`, boot),
      check: 'step',
      status: 'error',
      reason: 'infra-guest-step',
      evidence: { step: f.step, rc: f.rc, output: f.output, ...(f.uptime !== undefined ? { uptime: f.uptime } : {}) },
      durationMs: 0,
    });
  }

  const finished = outcome.status === 'done' && outcome.problems.length === 0;
  const evidence = {
    accel: opts.accel,
    status: outcome.status,
    wallMs: outcome.wallMs,
    // The host's own share of the boot: the overlay before QEMU, the checks after it.
    hostMs: hostBeforeMs + (Date.now() - guestEnded),
    ...(release ? { release } : {}),
    ...(boot.count > 1 ? { boot: `${boot.index + 1} of ${boot.count}`, suites: sessions.map(({ suite }) => suite) } : {}),
    ...(outcome.problems.length ? { protocolProblems: outcome.problems } : {}),
    ...stepFailureEvidence(failures),
    ...(finished ? {} : { exitCode: outcome.exitCode, consoleTail: tailLines(outcome.consoleTail, 25) }),
    serialLog,
  };
  // The kernel log is read whether the boot finished or not: a boot that never sent it is
  // an error of this check too, not a kernel whose log nobody looked at. Written before the
  // boot check, which is a boot's last: --resume takes a cell with it on disk as complete.
  const splats = dmesg === undefined ? [] : findSplats(dmesg);
  emit(BOOT_SUITE, BOOT_LANE, {
    subject: bootName('kernel', boot),
    check: 'dmesg',
    ...(dmesg === undefined
      ? { status: 'error', reason: finished ? 'infra-guest-protocol' : infraReason(outcome), evidence: { missing: 'the guest never sent its kernel log', serialLog } }
      : splats.length
        ? { status: 'fail', reason: 'dmesg-splat', evidence: { splats: splats.slice(0, 10) } }
        : { status: 'pass', reason: null, evidence: { lines: dmesg.split('\n').length } }),
    durationMs: 0,
  });
  const bootStatus: CheckStatus = finished ? 'pass' : 'error';
  emit(BOOT_SUITE, BOOT_LANE, {
    subject: bootName('kernel', boot),
    check: 'boot',
    status: bootStatus,
    reason: finished ? null : infraReason(outcome),
    evidence,
    durationMs: Date.now() - started,
  });
  return { outcome, evidence, failures, steps };
}
