/**
 * The policies suite (kernel lane): on each cell, every hook of every policy at
 * once (one boot per cell), then the ATT&CK triggers one by one, with the probe
 * counters read around each. Per trigger: which targets it fired (measured
 * coverage). Per policy: the first reason it cannot work here, or pass when a hook
 * of it was seen to fire.
 */
import { readFileSync } from 'node:fs';
import { assetPath } from '../../core/assets.js';
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import { subjectOf, validPolicies, type CellContext, type LiveSuite } from '../../core/suite.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { GuestFile, QemuSession } from '../../runners/qemu/session.js';
import type { GuestOutcome } from '../../runners/qemu/vm.js';
import { probeStepFile } from '../probe/index.js';
import { attachFailureReason, readAttach, readFacts } from '../probe/evidence.js';
import type { Trigger } from '../triggers/model.js';
import { triggerGuestFiles } from '../triggers/guest-files.js';
import { CoverageTracker, NULL_TRIGGER_PREFIX, parseRegistered, type TriggerRun } from './coverage.js';
import { planTargets, targetFiles, type TargetPlan } from './targets.js';
import { judgePolicy, type FeatureState } from './verdict.js';

/** Two null runs: the noise of launching a trigger and reading the counters. */
const NULL_RUNS = 2;

class PoliciesSession implements QemuSession {
  private readonly plan: TargetPlan;
  private readonly tracker: CoverageTracker;
  private refused = new Map<string, string>();
  private readonly features: FeatureState = { lsmActive: undefined, trampolines: undefined, overrideReturn: undefined, fmodRet: undefined };
  private readonly policies;
  private started = Date.now();

  constructor(private readonly ctx: CellContext, private readonly triggers: Trigger[]) {
    this.policies = validPolicies(ctx);
    this.plan = planTargets(this.policies, triggers, ctx.cell.arch);
    this.tracker = new CoverageTracker();
  }

  guestFiles(): GuestFile[] {
    const { kprobes, tracepoints } = targetFiles(this.plan);
    const files: GuestFile[] = [
      probeStepFile(),
      { path: '/bpfgate/steps/20-policies.sh', content: readFileSync(assetPath('suites', 'policies', 'guest', 'policies.sh')) },
      { path: '/bpfgate/policies/kprobes', content: kprobes },
      { path: '/bpfgate/policies/tracepoints', content: tracepoints },
      { path: '/bpfgate/policies/counters.awk', content: readFileSync(assetPath('suites', 'policies', 'guest', 'counters.awk')) },
    ];
    const nulls = Array.from({ length: NULL_RUNS }, (_, i) => ({
      id: `${NULL_TRIGGER_PREFIX}${i + 1}`, marker: `bpfgate-null-${i + 1}`, steps: 'true\n', cleanup: 'true\n',
    }));
    files.push(...triggerGuestFiles([...nulls, ...this.triggers], 0, '/bpfgate/triggers/list'));
    return files;
  }

  planned(): PlannedCheck[] {
    return [
      ...this.policies.map((p) => ({ subject: subjectOf(this.ctx, p), check: 'hooks', source: p.source })),
      ...this.triggers.map((t) => ({ subject: t.id, check: 'coverage', source: t.source })),
    ];
  }

  onRecord(record: GuestRecord): CheckDraft[] {
    switch (record.type) {
      case 'facts':
        this.features.lsmActive = readFacts(record).lsm.includes('bpf');
        return [];
      case 'attach': {
        const a = readAttach(record);
        const works = a.attached && (a.hits ?? 0) > 0;
        const verdict = a.attached ? works : attachFailureReason(a) === 'trampoline-unsupported' || a.object === 'override' ? false : undefined;
        if (a.object === 'fentry') this.features.trampolines = verdict;
        if (a.object === 'fmodret') this.features.fmodRet = verdict;
        if (a.object === 'override') this.features.overrideReturn = a.attached;
        return [];
      }
      case 'registered':
        this.refused = parseRegistered(record.body);
        return [];
      case 'counters': {
        const run = this.tracker.onCounters(record);
        return run && !run.trigger.startsWith(NULL_TRIGGER_PREFIX) ? [this.coverageCheck(run)] : [];
      }
      case 'step-start':
        if (record.header.name === '20-policies.sh') this.started = Date.now();
        return [];
      default:
        return [];
    }
  }

  /** A trigger's check: the targets it fired; it fails when a hook it claims to reach stayed silent. */
  private coverageCheck(run: TriggerRun): CheckDraft {
    const trigger = this.triggers.find((t) => t.id === run.trigger);
    const noise = this.tracker.noise();
    const fired: Record<string, number> = {};
    for (const [name, d] of run.delta) {
      const above = d - (noise.get(name) ?? 0);
      const target = this.plan.targets.find((t) => t.name === name);
      if (above > 0 && target) fired[`${target.kind}:${target.what}`] = above;
    }
    const hints = trigger ? (this.plan.forTrigger.get(trigger) ?? []) : [];
    const missed = hints.filter((h) => !this.refused.has(h.target.name) && fired[`${h.target.kind}:${h.target.what}`] === undefined).map((h) => h.hint);
    const absent = hints.filter((h) => this.refused.has(h.target.name)).map((h) => `${h.hint} (${this.refused.get(h.target.name)})`);
    const durationMs = Date.now() - this.started;
    this.started = Date.now();
    return {
      subject: run.trigger,
      check: 'coverage',
      status: missed.length ? 'fail' : 'pass',
      reason: missed.length ? 'not-fired' : null,
      evidence: {
        ...(trigger ? { technique: trigger.technique, tactic: trigger.tactic } : {}),
        exitCode: run.exitCode,
        fired,
        ...(missed.length ? { hintsNotFired: missed } : {}),
        ...(absent.length ? { hintsAbsentHere: absent } : {}),
        ...(run.exitCode !== 0 ? { output: run.output.slice(-400) } : {}),
      },
      durationMs,
      ...(trigger ? { source: trigger.source } : {}),
    };
  }

  finish(outcome: GuestOutcome): CheckDraft[] {
    if (outcome.status !== 'done') return []; // unanswered policies are charged to the infrastructure
    const hinted = new Map<string, Set<string>>();
    for (const [trigger, hints] of this.plan.forTrigger) hinted.set(trigger.id, new Set(hints.map((h) => h.target.name)));
    const measurements = { plan: this.plan, refused: this.refused, firing: this.tracker.firing(), hinted, features: this.features };
    return this.policies.map((p) => judgePolicy(p, subjectOf(this.ctx, p), measurements));
  }
}

export function policiesSuite(triggers: Trigger[]): LiveSuite {
  return {
    kind: 'live',
    name: 'policies',
    lane: 'kernel',
    // Registration of a few hundred probes, then every trigger with two counter reads under TCG.
    budgetMs: 60_000 + triggers.length * 2_500,
    sessions: { qemu: (ctx) => new PoliciesSession(ctx, triggers) },
  };
}
