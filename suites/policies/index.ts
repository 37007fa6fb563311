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
import { attachFailureReason, mixedTailCalls, readAttach, readFacts, tailcallProbe, type MixedTailCalls } from '../probe/evidence.js';
import type { Policy } from '../../policy/model.js';
import type { Trigger } from '../triggers/model.js';
import { triggerGuestFiles } from '../triggers/guest-files.js';
import { CoverageTracker, NULL_TRIGGER_PREFIX, parseRegistered, type TriggerRun } from './coverage.js';
import { emptyResolution, parseResolved, type Resolution } from './registration.js';
import { GENERATED_LIST_CAP, planTargets, targetFiles, type TargetPlan } from './targets.js';
import { judgePolicy, type FeatureState } from './verdict.js';

/** Two null runs: the noise of launching a trigger and reading the counters. */
const NULL_RUNS = 2;

class PoliciesSession implements QemuSession {
  private readonly plan: TargetPlan;
  private readonly tracker: CoverageTracker;
  private refused = new Map<string, string>();
  private resolution: Resolution = emptyResolution();
  private readonly features: FeatureState = { lsmActive: undefined, trampolines: undefined, overrideReturn: undefined, fmodRet: undefined };
  private readonly policies;
  private started = Date.now();
  /** Multi links attached (kmulti, umulti) and whether the kernel lets them share a tail-call map with single probes. */
  private readonly multi = new Map<string, boolean>();
  private readonly mixedTailCalls: { kprobe?: MixedTailCalls; uprobe?: MixedTailCalls } = {};

  constructor(private readonly ctx: CellContext, private readonly triggers: Trigger[]) {
    this.policies = validPolicies(ctx);
    this.plan = planTargets(this.policies, triggers, ctx.cell.arch);
    this.tracker = new CoverageTracker();
  }

  guestFiles(): GuestFile[] {
    const { kprobes, tracepoints, uprobes, lists, syscalls } = targetFiles(this.plan, this.ctx.cell.arch);
    const asset = (name: string) => readFileSync(assetPath('suites', 'policies', 'guest', name));
    const files: GuestFile[] = [
      probeStepFile(),
      { path: '/bpfgate/steps/20-policies.sh', content: asset('policies.sh') },
      { path: '/bpfgate/policies/kprobes', content: kprobes },
      { path: '/bpfgate/policies/tracepoints', content: tracepoints },
      { path: '/bpfgate/policies/uprobes', content: uprobes },
      { path: '/bpfgate/policies/lists', content: lists },
      { path: '/bpfgate/policies/syscalls', content: syscalls },
      { path: '/bpfgate/policies/list-cap', content: `${GENERATED_LIST_CAP}\n` },
      { path: '/bpfgate/policies/counters.awk', content: asset('counters.awk') },
      // Only where the loader's hook is a target: the guest step opens mmap events when it finds it.
      ...(this.plan.mmapEvents ? [{ path: '/bpfgate/policies/mmap-events.pl', content: asset('mmap-events.pl') }] : []),
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
        if (a.object === 'kmulti' || a.object === 'umulti') this.multi.set(a.object, a.attached);
        const pair = tailcallProbe(a.object);
        if (pair) this.mixedTailCalls[pair.kind] = mixedTailCalls(this.multi.get(pair.multi), a);
        return [];
      }
      case 'registered':
        this.refused = parseRegistered(record.body);
        return [];
      case 'resolved':
        this.resolution = parseResolved(record.body);
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
    const missed = hints.filter((h) => this.absentHere(h.target.name) === undefined && fired[`${h.target.kind}:${h.target.what}`] === undefined).map((h) => h.hint);
    const absent = hints.filter((h) => this.absentHere(h.target.name) !== undefined).map((h) => `${h.hint} (${this.absentHere(h.target.name)})`);
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

  /** Why a target is not on this cell (the kernel refused it, or its binary or symbol is missing), or undefined. */
  private absentHere(name: string): string | undefined {
    const refused = this.refused.get(name);
    if (refused) return refused;
    const binary = this.resolution.binaryMissing.get(name);
    if (binary) return `no ${binary.path} here`;
    const symbol = this.resolution.symbolMissing.get(name);
    if (symbol) return `${symbol.path} has no such ${symbol.what}`;
    return undefined;
  }

  finish(outcome: GuestOutcome): CheckDraft[] {
    if (outcome.status !== 'done') return []; // unanswered policies are charged to the infrastructure
    const hinted = new Map<string, Set<string>>();
    for (const [trigger, hints] of this.plan.forTrigger) hinted.set(trigger.id, new Set(hints.map((h) => h.target.name)));
    const measurements = { plan: this.plan, refused: this.refused, resolution: this.resolution, firing: this.tracker.firing(), hinted, features: this.features };
    return this.policies.map((p) => withMixedTailCalls(judgePolicy(p, subjectOf(this.ctx, p), measurements), p, this.mixedTailCalls));
  }
}

function withMixedTailCalls(check: CheckDraft, policy: Policy, state: { kprobe?: MixedTailCalls; uprobe?: MixedTailCalls }): CheckDraft {
  const kprobes = state.kprobe && policy.hooks.some((h) => h.kind === 'kprobe');
  const uprobes = state.uprobe && policy.hooks.some((h) => h.kind === 'uprobe');
  if (!kprobes && !uprobes) return check;
  return { ...check, evidence: { ...check.evidence, ...(kprobes ? { kprobeMultiTailCalls: state.kprobe } : {}), ...(uprobes ? { uprobeMultiTailCalls: state.uprobe } : {}) } };
}

export function policiesSuite(triggers: Trigger[]): LiveSuite {
  return {
    kind: 'live',
    name: 'policies',
    lane: 'kernel',
    // Registration of a few hundred probes (generated lists: a few hundred more, about 40 ms
    // each under TCG), then every trigger with two counter reads.
    budgetMs: 90_000 + triggers.length * 2_500,
    sessions: { qemu: (ctx) => new PoliciesSession(ctx, triggers) },
  };
}
