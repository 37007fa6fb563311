/**
 * Planning the tetragon lane on a cell, platform-free: which bundle, which policies
 * under which agent names, how they are applied (as `kubectl apply` would), with which
 * agent flags, and how they are spread over boots so each boot's verifier work fits
 * its load budget under emulation.
 */
import type { CellContext } from '../../core/suite.js';
import { subjectOf, validPolicies } from '../../core/suite.js';
import type { Policy } from '../../policy/model.js';
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

/** The namespace a policy lands in: a namespaced one without one goes to `default`, as `kubectl apply` puts it. */
export function appliedNamespace(policy: Policy): string | undefined {
  return policy.namespace ?? (policy.kind === 'TracingPolicyNamespaced' ? 'default' : undefined);
}

/** The policy document as the agent gets it: only `metadata.name` and `metadata.namespace` may differ. */
export function asApplied(policy: Policy, name: string): unknown {
  const d = policy.doc as { metadata?: Record<string, unknown> };
  const namespace = appliedNamespace(policy);
  return { ...d, metadata: { ...d.metadata, name, ...(namespace ? { namespace } : {}) } };
}

/**
 * Agent flags: the user's, plus the policy filter when a namespaced policy is loaded. The
 * release tarball leaves it off and the agent then refuses every namespaced policy; the
 * Kubernetes deployments such policies are written for run with it on.
 */
export function agentFlags(policies: readonly Policy[], userArgs: readonly string[]): string[] {
  const namespaced = policies.some((p) => p.kind === 'TracingPolicyNamespaced');
  return namespaced && !userArgs.some((a) => a.startsWith('--enable-policy-filter')) ? [...userArgs, '--enable-policy-filter'] : [...userArgs];
}

/** Does the agent attach a policy's kprobes with one kprobe.multi link on this cell? */
export function usesKprobeMulti(ctx: CellContext, agentArgs: readonly string[]): boolean {
  if (agentArgs.includes('--disable-kprobe-multi')) return false;
  // Tetragon needs fprobe (CONFIG_FPROBE); the kernel lane measured it on x86_64 only.
  return ctx.cell.arch === 'x86_64' && ctx.config.get('CONFIG_FPROBE') === 'y';
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
  };
}
