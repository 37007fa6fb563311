/**
 * The run: every selected suite on every selected cell. Static suites answer at
 * once; QEMU cells run in parallel (p-limit, --jobs) with one boot per cell for all
 * VM suites. Every finished check goes through the event bus, whose first listener
 * is the result store, so it is on disk before anything else sees it.
 *
 * Failures of the machine (a download, a boot) become `error` checks with an
 * `infra-*` reason on the cell concerned; the other cells still run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { checkKey, type CheckResult } from '../core/check.js';
import { BpfgateError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Reason } from '../core/reasons.js';
import type { ResultStore } from '../core/results-store.js';
import type { Cell } from '../matrix/cell.js';
import type { PolicyDocument } from '../policy/index.js';
import type { Policy, PolicyProblem } from '../policy/model.js';
import type { CellContext, CheckDraft, StaticSuite, Suite, VmSuite } from '../suites/suite.js';
import { policySubjects } from '../suites/subjects.js';
import { chooseAccel } from './qemu/accel.js';
import { BOOT_SUITE, runQemuCell } from './qemu/cell-runner.js';
import { cachedKernel, readKernelConfig } from './qemu/kernel-cache.js';
import { prepareQemuCell } from './qemu/prepare.js';

export interface RunOptions {
  cells: Cell[];
  suites: Suite[];
  /** Every policy document read, valid or not (policy/index.ts readPolicies). */
  documents: PolicyDocument[];
  outDir: string;
  store: ResultStore;
  bus: EventBus;
  /** Cells booted at once. Default: fitted to the cores (each TCG guest keeps one core busy). */
  jobs?: number;
  /** Per-cell timeout; default: boot allowance plus the suites' budgets. */
  timeoutMs?: number;
  /** A lock file pinning kernel package versions. */
  lockFile?: string;
}

/** Time a TCG boot may take before the suites start, with room for a loaded 2-core machine. */
const BOOT_ALLOWANCE_MS = 60_000;

export function defaultJobs(): number {
  return Math.max(1, Math.min(4, cpus().length));
}

export async function runMatrix(opts: RunOptions): Promise<CheckResult[]> {
  const { bus, store } = opts;
  const policies = opts.documents.flatMap((d) => (d.policy ? [d.policy] : []));
  const policyProblems = new Map<Policy, PolicyProblem[]>(opts.documents.flatMap((d) => (d.policy ? [[d.policy, d.problems] as const] : [])));
  const fileProblems = opts.documents.filter((d) => !d.policy).flatMap((d) => d.problems);
  const subjects = policySubjects(policies);
  const staticSuites = opts.suites.filter((s): s is StaticSuite => s.kind === 'static');
  const vmSuites = opts.suites.filter((s): s is VmSuite => s.kind === 'vm');
  bus.emit({ type: 'run-start', cells: opts.cells.map((c) => c.id), suites: opts.suites.map((s) => s.name) });

  /** Finished means on disk and not an error: --resume runs errors again. */
  const finished = (cell: Cell, lane: CheckResult['lane'], suite: string, subject: string, check: string) => {
    const prior = store.get(checkKey({ cell: cell.id, lane, suite, subject, check }));
    return prior !== undefined && prior.status !== 'error';
  };
  const stamp = (cell: Cell, lane: CheckResult['lane'], suite: string, d: CheckDraft): CheckResult => ({
    cell: cell.id, lane, suite, subject: d.subject, check: d.check, status: d.status, reason: d.reason,
    evidence: d.evidence, durationMs: d.durationMs, ...(d.source ? { source: d.source } : {}),
  });

  const limit = pLimit(opts.jobs ?? defaultJobs());
  const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-'));
  try {
    await Promise.all(
      opts.cells.map(async (cell) => {
        // A cell takes a job slot for each step that keeps a core busy (preparing, each boot)
        // and none while it waits: a cell waiting for its extra boots must not hold a slot.
        let started = 0;
        const markStarted = () => {
          if (started) return;
          started = Date.now();
          bus.emit({ type: 'cell-start', cell: cell.id });
        };
        const slot = <T>(work: () => Promise<T>) =>
          limit(() => {
            markStarted();
            return work();
          });
        const ctx: CellContext = { cell, policies, policyProblems, fileProblems, subjects };
        let ok = true;
        const record = (lane: CheckResult['lane'], suite: string, d: CheckDraft) => {
          if (finished(cell, lane, suite, d.subject, d.check)) return;
          if (d.status === 'error') ok = false;
          bus.emit({ type: 'check', result: stamp(cell, lane, suite, d) });
        };

        if (vmSuites.length > 0 && cell.platform === 'qemu') {
          ok = (await runVmCell(cell, ctx, vmSuites, opts, scratch, record, finished, slot)) && ok;
        } else {
          await slot(async () => {
            for (const suite of vmSuites) {
              record(suite.lane, suite.name, {
                subject: cell.id, check: 'platform', status: 'skip', reason: null,
                evidence: { why: `the ${suite.name} suite runs on QEMU cells; ${cell.platform} cells are run by their own lane` },
                durationMs: 0,
              });
            }
          });
        }
        // Static checks after the boot: they then see the kernel config the VM cell fetched,
        // or, in a static-only run, the config of the kernel cached by an earlier run.
        if (staticSuites.length > 0 && !ctx.kernelConfig && cell.platform === 'qemu') {
          ctx.kernelConfig = await cachedKernelConfig(cell);
        }
        for (const suite of staticSuites) {
          const t0 = Date.now();
          for (const d of suite.run(ctx)) record(suite.lane, suite.name, { ...d, durationMs: d.durationMs || Date.now() - t0 });
        }
        markStarted();
        bus.emit({ type: 'cell-end', cell: cell.id, ok, durationMs: Date.now() - started });
      }),
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const results = store.all().filter((r) => opts.cells.some((c) => c.id === r.cell));
  const counts: Record<string, number> = { pass: 0, fail: 0, skip: 0, error: 0 };
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  bus.emit({ type: 'run-end', counts });
  return results;
}

/** The config of the cell's kernel when it is already on disk; never downloads. */
async function cachedKernelConfig(cell: Cell): Promise<Map<string, string> | undefined> {
  try {
    const kernel = cell.kernel.kind === 'file' ? undefined : await cachedKernel(cell.kernel);
    const config = cell.kernel.kind === 'file' ? cell.kernel.config : kernel?.config;
    return config ? await readKernelConfig(config) : undefined;
  } catch {
    return undefined; // a prediction without the config: the needs check says what it could not predict
  }
}

async function runVmCell(
  cell: Cell,
  ctx: CellContext,
  suites: VmSuite[],
  opts: RunOptions,
  scratch: string,
  record: (lane: CheckResult['lane'], suite: string, d: CheckDraft) => void,
  finished: (cell: Cell, lane: CheckResult['lane'], suite: string, subject: string, check: string) => boolean,
  slot: <T>(work: () => Promise<T>) => Promise<T>,
): Promise<boolean> {
  const emitPhase = (phase: string, detail?: string) => opts.bus.emit({ type: 'phase', cell: cell.id, phase, ...(detail ? { detail } : {}) });
  const chargeAll = (reason: Reason, evidence: Record<string, unknown>) => {
    for (const suite of suites) {
      for (const planned of suite.session(ctx).planned()) {
        record(suite.lane, suite.name, { ...planned, status: 'error', reason, evidence, durationMs: 0 });
      }
    }
    record('kernel', BOOT_SUITE, { subject: 'kernel', check: 'boot', status: 'error', reason, evidence, durationMs: 0 });
  };

  // --resume: a cell whose every planned check is on disk is not booted again.
  const pending = suites.some((suite) =>
    suite.session(ctx).planned().some((p) => !finished(cell, suite.lane, suite.name, p.subject, p.check)),
  );
  if (!pending && finished(cell, 'kernel', BOOT_SUITE, 'kernel', 'boot')) {
    emitPhase('resume', 'every check already on disk');
    return true;
  }

  let prepared;
  let accel;
  try {
    [prepared, accel] = await slot(async () => {
      emitPhase('prepare', cell.kernel.kind === 'debian' ? `${cell.kernel.suite}/${cell.kernel.package}` : cell.kernel.image);
      const p = await prepareQemuCell(cell, opts.lockFile ? { lockFile: opts.lockFile } : {});
      return [p, await chooseAccel(cell.arch, p.kernelImage, p.imageSha256, p.baseInitrd)] as const;
    });
  } catch (err) {
    const reason: Reason = err instanceof BpfgateError && err.code.startsWith('infra-') ? (err.code as Reason) : 'infra-download';
    chargeAll(reason, { error: err instanceof Error ? err.message : String(err) });
    return false;
  }
  ctx.kernelConfig = prepared.config;
  ctx.accel = accel.accel;
  const budget = suites.reduce((sum, s) => sum + s.budgetMs, 0);
  const outcome = await runQemuCell({
    ctx,
    suites,
    kernelImage: prepared.kernelImage,
    baseInitrd: prepared.baseInitrd,
    accel: accel.accel,
    timeoutMs: opts.timeoutMs ?? BOOT_ALLOWANCE_MS + budget,
    cellDir: join(opts.outDir, 'cells', cell.id),
    workDir: join(scratch, cell.id.replace(/[^A-Za-z0-9._+-]/g, '_')),
    done: (suite, subject, check) => {
      const lane = suite === BOOT_SUITE ? 'kernel' : (suites.find((s) => s.name === suite)?.lane ?? 'kernel');
      return finished(cell, lane, suite, subject, check);
    },
    record: (suite, d) => (typeof suite === 'string' ? record('kernel', suite, d) : record(suite.lane, suite.name, d)),
    onPhase: (phase, detail) => emitPhase(phase, phase === 'boot' ? `${detail} (${accel.why})` : detail),
    schedule: slot,
  });
  const cellResults = opts.store.all().filter((r) => r.cell === cell.id);
  for (const suite of suites) {
    for (const d of suite.derive?.(cell, cellResults) ?? []) record(suite.lane, suite.name, d);
  }
  return outcome.status === 'done';
}
