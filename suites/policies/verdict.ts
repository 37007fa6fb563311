/**
 * The verdict of one policy on one cell, from what the guest measured. The first
 * reason that fails wins, in the order a user fixes them: a hook that cannot exist,
 * then a kernel feature the policy needs, then whether any trigger made it fire.
 * A pass needs a hook of the policy seen to fire; a policy nothing exercised is
 * `untested`, never a pass.
 */
import type { CheckDraft } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';
import type { Hook, Policy } from '../../policy/model.js';
import { ignoresMissingCall } from '../../policy/spec.js';
import type { Target, TargetPlan, Untargeted } from './targets.js';

/** What the same boot's probe step measured about the features policies lean on. */
export interface FeatureState {
  lsmActive: boolean | undefined;
  /** fentry attached and ran: trampolines work. */
  trampolines: boolean | undefined;
  overrideReturn: boolean | undefined;
  fmodRet: boolean | undefined;
}

export interface Measurements {
  plan: TargetPlan;
  /** Targets the kernel refused to register, with its words. */
  refused: Map<string, string>;
  /** trigger -> target name -> hits above noise. */
  firing: Map<string, Map<string, number>>;
  /** trigger -> the target names its hints name. */
  hinted: Map<string, Set<string>>;
  features: FeatureState;
}

interface HookReport {
  hook: string;
  line: number;
  target?: string;
  refused?: string;
  untargeted?: string;
  /** The triggers that fired it most, with their hits (at most FIRED_BY_SHOWN). */
  firedBy?: Record<string, number>;
  firedByCount?: number;
}

/** Evidence names the strongest triggers; the count says how many there were. */
const FIRED_BY_SHOWN = 5;

const isTarget = (t: Target | Untargeted | undefined): t is Target => t !== undefined && 'name' in t;

export function judgePolicy(policy: Policy, subject: string, m: Measurements): CheckDraft {
  const reports: HookReport[] = policy.hooks.map((hook) => {
    const t = m.plan.forHook.get(hook);
    const report: HookReport = { hook: hook.id, line: hook.source.line };
    if (!isTarget(t)) {
      report.untargeted = t?.why ?? 'no target';
      return report;
    }
    report.target = `${t.kind}:${t.what}`;
    const refused = m.refused.get(t.name);
    if (refused) report.refused = refused;
    const firedBy: [string, number][] = [];
    for (const [trigger, fired] of m.firing) {
      const hits = fired.get(t.name);
      if (hits) firedBy.push([trigger, hits]);
    }
    if (firedBy.length) {
      firedBy.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      report.firedBy = Object.fromEntries(firedBy.slice(0, FIRED_BY_SHOWN));
      report.firedByCount = firedBy.length;
    }
    return report;
  });
  const hookOf = (r: HookReport) => policy.hooks.find((h) => h.id === r.hook && h.source.line === r.line);

  const fail = (reason: Reason, hook: Hook | undefined, detail: Record<string, unknown>): CheckDraft => ({
    subject,
    check: 'hooks',
    status: 'fail',
    reason,
    evidence: { ...detail, hooks: summarize(reports) },
    durationMs: 0,
    source: hook?.source ?? policy.source,
  });

  // A call the policy tells the agent to skip where it is missing (ignore.callNotFound) is no failure.
  const refusedOf = (kinds: Hook['kind'][]) =>
    reports.find((r) => {
      const hook = hookOf(r);
      return r.refused && kinds.includes(hook?.kind ?? 'usdt') && !(hook && hook.kind === 'kprobe' && ignoresMissingCall(policy, hook));
    });
  const kprobeRefused = refusedOf(['kprobe']);
  if (kprobeRefused) return fail('symbol-missing', hookOf(kprobeRefused), { missing: kprobeRefused.target, kernelSays: kprobeRefused.refused });
  const tpRefused = refusedOf(['tracepoint', 'rawtp']);
  if (tpRefused) return fail('tracepoint-missing', hookOf(tpRefused), { missing: tpRefused.target, kernelSays: tpRefused.refused });
  const lsmRefused = refusedOf(['lsm']);
  if (lsmRefused) return fail('lsm-hook-missing', hookOf(lsmRefused), { missing: lsmRefused.target, kernelSays: lsmRefused.refused });

  const needs = new Set(policy.needs.map((n) => n.feature));
  const needOf = (feature: string) => policy.needs.find((n) => n.feature === feature);
  const lsmHook = policy.hooks.find((h) => h.kind === 'lsm');
  if (needs.has('bpf-lsm') && m.features.lsmActive === false) {
    return fail('lsm-inactive', lsmHook, { why: '"bpf" is not in /sys/kernel/security/lsm: BPF LSM programs attach and never run' });
  }
  if (needs.has('trampoline') && m.features.trampolines === false) {
    return fail('trampoline-unsupported', lsmHook ?? policy.hooks[0], { because: needOf('trampoline')?.because, why: 'fentry attach failed in this guest (524)' });
  }
  for (const override of policy.needs.filter((n) => n.feature === 'override')) {
    const works = override.via === 'fmod-ret' ? m.features.fmodRet : m.features.overrideReturn;
    if (works === false) {
      return fail('override-unsupported', undefined, { because: override.because, via: override.via ?? 'override-return', why: `${override.via ?? 'bpf_override_return'} failed in this guest` });
    }
  }

  const fired = reports.filter((r) => r.firedBy);
  if (fired.length > 0) {
    return { subject, check: 'hooks', status: 'pass', reason: null, evidence: { fired: fired.length, hooks: summarize(reports) }, durationMs: 0, source: policy.source };
  }
  // Did any trigger claim to exercise one of these hooks? Then it is a miss, not a gap in the catalogue.
  const policyTargets = new Set(reports.flatMap((r) => (r.target ? [targetName(m.plan, r)] : [])));
  const claimedBy = [...m.hinted].filter(([, names]) => [...names].some((n) => policyTargets.has(n))).map(([t]) => t);
  if (claimedBy.length > 0) return fail('not-fired', policy.hooks[0], { claimedBy, why: 'triggers meant for these hooks ran, and no hook fired' });
  return {
    subject,
    check: 'hooks',
    status: 'skip',
    reason: 'untested',
    evidence: { why: 'no trigger reached any hook of this policy', unreached: reports.map((r) => r.target ?? `${r.hook} (${r.untargeted})`) },
    durationMs: 0,
    source: policy.source,
  };
}

function targetName(plan: TargetPlan, r: HookReport): string {
  return plan.targets.find((t) => `${t.kind}:${t.what}` === r.target)?.name ?? '';
}

/** Evidence stays readable for policies with hundreds of hooks: fired and refused ones in full, the rest counted. */
function summarize(reports: HookReport[]): Record<string, unknown> {
  const notable = reports.filter((r) => r.firedBy || r.refused).slice(0, 40);
  const quiet = reports.filter((r) => !r.firedBy && !r.refused);
  return {
    total: reports.length,
    notable,
    ...(quiet.length ? { notFired: quiet.slice(0, 40).map((r) => r.target ?? `${r.hook} (${r.untargeted})`), notFiredCount: quiet.length } : {}),
  };
}
