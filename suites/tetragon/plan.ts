/**
 * Planning the tetragon lane on a cell, platform-free: which bundle, which policies
 * under which agent names, how they are applied (as `kubectl apply` would), with which
 * agent flags, and how they are spread over boots so each boot's verifier work fits
 * its load budget under emulation.
 */
import type { CellContext } from '../../core/suite.js';
import { subjectOf, validPolicies } from '../../core/suite.js';
import { kernelAtLeast } from '../../core/facts.js';
import type { Policy } from '../../policy/model.js';
import { specOption } from '../../policy/spec.js';
import { planBoots, programSets, TCG_SECONDS_PER_PROGRAM_SET } from './boots.js';
import { bundleFor, type TetragonBundle } from './bundle.js';

/** Guest seconds, from the agent's start, for loading policies; the verifier is slow under TCG. */
export const LOAD_BUDGET_MS = 360_000;

export interface TetragonOptions {
  /** Extra agent flags (`--disable-kprobe-multi`). */
  agentArgs: string[];
  /** Boots per cell the policies are spread over; `auto` sizes them to the load budget (one under KVM). */
  boots?: number | 'auto';
}

/** The lane's plan for one cell. */
export interface TetragonPlan {
  /** The bundle of the cell's arch; undefined when bundles were given for other arches only. */
  bundle: TetragonBundle | undefined;
  /** Valid policies, in the order of the context. */
  policies: Policy[];
  /** Subject of each policy. */
  subjects: string[];
  /** Name of each policy in the agent. */
  names: string[];
  /** Namespace each policy is applied in, where it differs from `appliedNamespace` (a cluster run's own namespace). */
  namespaces?: (string | undefined)[];
  /** Boot each policy loads in. */
  bootOf: number[];
  bootCount: number;
  /** The agent attaches kprobes through kprobe.multi on this cell (where the lane knows). */
  kprobeMulti?: boolean;
  /** The agent attaches uprobes through uprobe.multi on this cell (where the lane knows). */
  uprobeMulti?: boolean;
}

/**
 * The name each policy goes by in the agent. Corpora reuse names (four examples are called
 * `syscalls`) and the agent refuses a second policy with a name it holds, which would read
 * as a load error of the policy; so every later holder of a name gets a numbered one.
 */
export function agentNames(policies: readonly Policy[]): string[] {
  const taken = new Set<string>();
  return policies.map((p) => {
    let name = p.name;
    for (let n = 2; taken.has(name); n++) name = `${p.name}-${n}`;
    taken.add(name);
    return name;
  });
}

/**
 * The namespace a policy lands in, as `kubectl apply` puts it: a namespaced one in its own,
 * or `default` when it names none; a cluster-scoped one in none, even when its file names
 * one (the API server drops the namespace of a cluster-scoped object, while the agent's own
 * API refuses it: "metadata.namespace: Forbidden: not allowed on this type").
 */
export function appliedNamespace(policy: Policy): string | undefined {
  if (policy.kind !== 'TracingPolicyNamespaced') return undefined;
  return policy.namespace ?? 'default';
}

/** The policy document as the agent gets it: only `metadata.name` and `metadata.namespace` may differ. */
export function asApplied(policy: Policy, name: string): unknown {
  const d = policy.doc as { metadata?: Record<string, unknown> };
  const { namespace: _asWritten, ...metadata } = d.metadata ?? {};
  const namespace = appliedNamespace(policy);
  return { ...d, metadata: { ...metadata, name, ...(namespace ? { namespace } : {}) } };
}

/** A label selector that selects something: one with no labels and no expressions selects everything. */
function narrows(selector: unknown): boolean {
  const s = selector as { matchLabels?: Record<string, unknown>; matchExpressions?: unknown[] } | null | undefined;
  return Object.keys(s?.matchLabels ?? {}).length + (s?.matchExpressions?.length ?? 0) > 0;
}

/**
 * Which processes the agent's policy filter lets a policy see, as Tetragon v1.5.0 decides
 * it (pkg/sensors/handler.go updatePolicyFilter): those of pods a `podSelector` or
 * `containerSelector` with a label or an expression picks (`labels`), else those of its
 * namespace's pods (`namespace`, a namespaced policy); every process when undefined.
 */
export function podScope(policy: Policy): 'namespace' | 'labels' | undefined {
  const spec = (policy.doc.spec ?? {}) as Record<string, unknown>;
  if (narrows(spec.podSelector) || narrows(spec.containerSelector)) return 'labels';
  return policy.kind === 'TracingPolicyNamespaced' ? 'namespace' : undefined;
}

/** Does the agent need its policy filter for this policy? Without it, it refuses the policy: "policyfilter is disabled". */
export function needsPolicyFilter(policy: Policy): boolean {
  return podScope(policy) !== undefined;
}

/**
 * Agent flags: the user's, plus the policy filter when a policy needs it (needsPolicyFilter).
 * The release tarball leaves it off and the agent then refuses such policies; the Kubernetes
 * deployments they are written for run with it on (the Helm chart's default).
 */
export function agentFlags(policies: readonly Policy[], userArgs: readonly string[]): string[] {
  const filtered = policies.some(needsPolicyFilter);
  return filtered && !userArgs.some((a) => a.startsWith('--enable-policy-filter')) ? [...userArgs, '--enable-policy-filter'] : [...userArgs];
}

/** Does the agent attach a policy's kprobes with one kprobe.multi link on this cell? */
export function usesKprobeMulti(ctx: CellContext, agentArgs: readonly string[]): boolean {
  if (agentArgs.includes('--disable-kprobe-multi')) return false;
  // Tetragon needs fprobe (CONFIG_FPROBE); the kernel lane measured it on x86_64 only.
  return ctx.cell.arch === 'x86_64' && ctx.config.get('CONFIG_FPROBE') === 'y';
}

/** Does the agent attach uprobes with one uprobe.multi link on this cell? (6.6+, CONFIG_UPROBES; no agent flag turns it off.) */
export function usesUprobeMulti(ctx: CellContext): boolean {
  return ctx.config.get('CONFIG_UPROBES') === 'y' && kernelAtLeast(ctx.facts.kernel.release, 6, 6);
}

/**
 * The multi links the agent attaches this policy's hooks through: spec.kprobes and enforcers
 * through kprobe.multi, uprobes through uprobe.multi, unless the policy's own
 * `spec.options` turns them off (`disable-kprobe-multi`, `disable-uprobe-multi`, parsed as
 * Go's ParseBool). The loader's kprobe is a sensor of its own, never multi.
 */
export function multiLinks(policy: Policy, plan: Pick<TetragonPlan, 'kprobeMulti' | 'uprobeMulti'>): { kprobeMulti?: boolean; uprobeMulti?: boolean } {
  const off = (name: string) => /^(1|t|true)$/i.test(specOption(policy, name) ?? '');
  const kprobes = policy.hooks.some((h) => h.kind === 'kprobe' && h.path !== 'spec.loader');
  const uprobes = policy.hooks.some((h) => h.kind === 'uprobe');
  return {
    ...(kprobes && plan.kprobeMulti !== undefined ? { kprobeMulti: plan.kprobeMulti && !off('disable-kprobe-multi') } : {}),
    ...(uprobes && plan.uprobeMulti !== undefined ? { uprobeMulti: plan.uprobeMulti && !off('disable-uprobe-multi') } : {}),
  };
}

export function planTetragonCell(ctx: CellContext, bundles: readonly TetragonBundle[], options: TetragonOptions): TetragonPlan {
  const bundle = bundleFor(bundles, ctx.cell.arch);
  const policies = validPolicies(ctx);
  const multi = usesKprobeMulti(ctx, options.agentArgs);
  const costs = policies.map((p) => programSets(p, multi));
  // Under KVM the verifier runs at native speed: one boot holds the corpus.
  const boots = !bundle || (ctx.facts.accel?.accel === 'kvm' && (options.boots ?? 'auto') === 'auto') ? 1 : (options.boots ?? 'auto');
  const plan = planBoots(policies, costs, { boots, budgetSeconds: LOAD_BUDGET_MS / 1000, secondsPerSet: TCG_SECONDS_PER_PROGRAM_SET[ctx.cell.arch] });
  return {
    bundle,
    policies,
    subjects: policies.map((p) => subjectOf(ctx, p)),
    names: agentNames(policies),
    bootOf: plan.bootOf,
    bootCount: plan.count,
    kprobeMulti: multi,
    uprobeMulti: usesUprobeMulti(ctx),
  };
}
