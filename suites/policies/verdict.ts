/**
 * The verdict of one policy on one cell, from what the guest measured. The first
 * reason that fails wins, in the order a user fixes them: a policy with nothing to
 * attach, a binary or a hook that cannot exist, a list too large to register, then a
 * kernel feature the policy needs, then whether any trigger made it fire.
 * A pass needs a hook of the policy seen to fire; a policy nothing exercised is
 * `untested`, never a pass.
 */
import type { CheckDraft } from '../../core/check.js';
import type { Reason } from '../../core/reasons.js';
import type { Hook, Policy } from '../../policy/model.js';
import { ignoresMissingCall } from '../../policy/spec.js';
import { emptyResolution, type ListExpansion, type Resolution } from './registration.js';
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
  /** How the guest resolved the targets (fallback names, uprobe offsets, missing binaries, lists). */
  resolution?: Resolution;
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
  /** A kprobe the kernel took under the agent's fallback name: that name, and why the first was refused. */
  attachedAs?: string;
  /** A uprobe or USDT as registered: `PATH:OFFSET(SEMAPHORE)`. */
  uprobe?: string;
  /** How a `/procRoot/...` path was read. */
  procRoot?: string;
  binaryMissing?: { path: string; sameName: string[] };
  symbolMissing?: { path: string; what: 'symbol' | 'probe' };
  list?: ListExpansion;
  tooLarge?: { expanded: number; cap: number };
  /** The triggers that fired it most, with their hits (at most FIRED_BY_SHOWN). */
  firedBy?: Record<string, number>;
  firedByCount?: number;
}

/** Evidence names the strongest triggers; the count says how many there were. */
const FIRED_BY_SHOWN = 5;

const isTarget = (t: Target | Untargeted | undefined): t is Target => t !== undefined && 'name' in t;

export function judgePolicy(policy: Policy, subject: string, m: Measurements): CheckDraft {
  if (policy.hooks.length === 0) {
    return {
      subject,
      check: 'hooks',
      status: 'fail',
      reason: 'no-hooks',
      evidence: { why: 'the policy attaches nothing: it has no kprobes, tracepoints, lsmhooks, uprobes, usdts, enforcers or loader, so it can never produce an event', spec: Object.keys((policy.doc.spec ?? {}) as object) },
      durationMs: 0,
      source: policy.source,
    };
  }
  const resolution = m.resolution ?? emptyResolution();
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
    const fallback = resolution.fallback.get(t.name);
    if (fallback) report.attachedAs = `${fallback.symbol} (${fallback.refused}; the agent's BPF library retries with the arch's syscall prefix)`;
    const uprobe = resolution.uprobes.get(t.name);
    if (uprobe) report.uprobe = uprobe;
    if ((hook.kind === 'uprobe' || hook.kind === 'usdt') && hook.name.startsWith('/procRoot/')) report.procRoot = PROC_ROOT_NOTE;
    const binaryMissing = resolution.binaryMissing.get(t.name);
    if (binaryMissing) report.binaryMissing = binaryMissing;
    const symbolMissing = resolution.symbolMissing.get(t.name);
    if (symbolMissing) report.symbolMissing = symbolMissing;
    const list = resolution.lists.get(t.name);
    if (list) report.list = list;
    const tooLarge = resolution.tooLarge.get(t.name);
    if (tooLarge) report.tooLarge = tooLarge;
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
  const binaryMissing = reports.find((r) => r.binaryMissing);
  if (binaryMissing?.binaryMissing) {
    const { path, sameName } = binaryMissing.binaryMissing;
    return fail('binary-missing', hookOf(binaryMissing), {
      missing: path,
      why: `${path} does not exist on this cell: a uprobe is placed on the file, which must exist when the policy loads`,
      ...(path.startsWith('/procRoot/') ? { procRoot: PROC_ROOT_NOTE } : {}),
      ...(sameName.length ? { sameNameHere: sameName } : {}),
      ...(debianKeeps(path) ? { debianKeepsIt: debianKeeps(path) } : {}),
    });
  }
  const kprobeRefused = refusedOf(['kprobe']);
  if (kprobeRefused) return fail('symbol-missing', hookOf(kprobeRefused), { missing: kprobeRefused.target, kernelSays: kprobeRefused.refused });
  // Every call missing, each skipped as the policy asks (ignore.callNotFound): the agent lists it
  // enabled with nothing attached, which is no working policy.
  const skippedAsAsked = (r: HookReport) => {
    const hook = hookOf(r);
    return r.refused !== undefined && hook?.kind === 'kprobe' && ignoresMissingCall(policy, hook);
  };
  if (reports.length > 0 && reports.every(skippedAsAsked)) {
    return fail('symbol-missing', hookOf(reports[0]!), { why: 'every hook is missing on this cell: the agent skips them all (ignore.callNotFound) and attaches nothing', missing: reports.map((r) => r.target) });
  }
  const symbolMissing = reports.find((r) => r.symbolMissing);
  if (symbolMissing?.symbolMissing) {
    const { path, what } = symbolMissing.symbolMissing;
    return fail('symbol-missing', hookOf(symbolMissing), {
      missing: symbolMissing.target,
      why: what === 'symbol'
        ? `${path} has no function symbol of that name in .symtab or .dynsym (STT_FUNC, defined), where the agent's BPF library looks it up`
        : `${path} has no USDT probe of that provider and name in .note.stapsdt`,
    });
  }
  const tooLarge = reports.find((r) => r.tooLarge);
  if (tooLarge?.tooLarge) {
    return fail('list-too-large', hookOf(tooLarge), {
      list: tooLarge.target,
      expanded: tooLarge.tooLarge.expanded,
      cap: tooLarge.tooLarge.cap,
      why: `the list expands to ${tooLarge.tooLarge.expanded} functions on this cell, more than the ${tooLarge.tooLarge.cap} the lane registers: the policy was not measured`,
    });
  }
  const tpRefused = refusedOf(['tracepoint', 'rawtp']);
  if (tpRefused) return fail('tracepoint-missing', hookOf(tpRefused), { missing: tpRefused.target, kernelSays: tpRefused.refused });
  const lsmRefused = refusedOf(['lsm']);
  if (lsmRefused) return fail('lsm-hook-missing', hookOf(lsmRefused), { missing: lsmRefused.target, kernelSays: lsmRefused.refused });
  const uprobeRefused = refusedOf(['uprobe', 'usdt']);
  if (uprobeRefused) return fail('attach-failed', hookOf(uprobeRefused), { target: uprobeRefused.target, kernelSays: uprobeRefused.refused });
  const loader = policy.hooks.find((h) => h.path === 'spec.loader');
  if (loader && m.plan.mmapEvents && !/^opened/.test(resolution.mmapEvents ?? '')) {
    return fail('attach-failed', loader, { why: 'the loader\'s mmap events could not be opened (perf_event_open per CPU, as the agent\'s loader sensor does)', guestSays: resolution.mmapEvents ?? 'no answer' });
  }

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
  const loaderNote = loader && resolution.mmapEvents ? { mmapEvents: `${resolution.mmapEvents} (as the agent's loader sensor opens them)` } : {};
  if (fired.length > 0) {
    return { subject, check: 'hooks', status: 'pass', reason: null, evidence: { fired: fired.length, ...loaderNote, hooks: summarize(reports) }, durationMs: 0, source: policy.source };
  }
  // Did any trigger claim to exercise one of these hooks? Then it is a miss, not a gap in the catalogue.
  const policyTargets = new Set(policy.hooks.map((h) => m.plan.forHook.get(h)).filter(isTarget).map((t) => t.name));
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

/** How the policies suite reads a `/procRoot/...` path. */
export const PROC_ROOT_NOTE = "Tetragon's Helm chart mounts the host's /proc at /procRoot in the agent's pod: /procRoot/PID/root/PATH is PATH as that process sees it; the kernel lane reads /procRoot as the agent's procfs, this guest's /proc";

/** Where Debian keeps a file that other distributions keep at `path`, when bpfgate knows it. */
function debianKeeps(path: string): string | undefined {
  const lib = /^\/(?:usr\/)?lib64\/(lib[^/]+\.so[.\d]*)$/.exec(path);
  if (lib) return `Debian keeps ${lib[1]} in /lib/<triplet>/ (/lib/x86_64-linux-gnu, /lib/aarch64-linux-gnu); /lib64 holds only the x86_64 dynamic loader (ld-linux-x86-64.so.2)`;
  return undefined;
}

/** Evidence stays readable for policies with hundreds of hooks: fired and refused ones in full, the rest counted. */
function summarize(reports: HookReport[]): Record<string, unknown> {
  const noted = (r: HookReport) => r.firedBy || r.refused || r.attachedAs || r.uprobe || r.binaryMissing || r.symbolMissing || r.list || r.tooLarge;
  const notable = reports.filter(noted).slice(0, 40);
  const quiet = reports.filter((r) => !noted(r));
  return {
    total: reports.length,
    notable,
    ...(quiet.length ? { notFired: quiet.slice(0, 40).map((r) => r.target ?? `${r.hook} (${r.untargeted})`), notFiredCount: quiet.length } : {}),
  };
}
