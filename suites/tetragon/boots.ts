/**
 * Spreading a cell's policies over several boots. The agent loads one policy at a
 * time and, under TCG, the verifier makes each BPF program set cost seconds: the
 * whole corpus does not fit one guest's load budget. The policies are packed into
 * as many boots as the budget asks, and the boots run side by side like cells.
 */
import type { Arch } from '../../matrix/cell.js';
import type { Policy } from '../../policy/model.js';
import { hasSelectors } from '../../policy/spec.js';

/**
 * Guest seconds per BPF program set the agent loads, measured under TCG with Tetragon
 * v1.5.0 on Debian 6.12 and the whole corpus: x86_64 8-10 s, arm64 (16K pages) 18-30 s.
 */
export const TCG_SECONDS_PER_PROGRAM_SET: Record<Arch, number> = { x86_64: 10, arm64: 20 };
/** Guest seconds from the agent's start until it answers on its socket, under TCG. */
export const TCG_AGENT_START_SECONDS = 30;

/**
 * BPF program sets the agent loads for a policy: one per hook, two for a kprobe
 * with `return: true`; with kprobe.multi, one (two with returns) for all of the
 * policy's kprobes together.
 */
export function programSets(policy: Policy, kprobeMulti: boolean): number {
  const kprobes = policy.hooks.filter((h) => h.kind === 'kprobe');
  const others = policy.hooks.length - kprobes.length;
  if (kprobeMulti && kprobes.length > 0) return others + 1 + (kprobes.some((h) => h.kretprobe) ? 1 : 0);
  return others + kprobes.reduce((n, h) => n + (h.kretprobe ? 2 : 1), 0);
}

/** Boots needed so that no boot's estimated load exceeds the budget (at least one). */
export function bootsNeeded(costs: readonly number[], budgetSeconds: number, secondsPerSet: number): number {
  const usable = Math.max(budgetSeconds - TCG_AGENT_START_SECONDS, secondsPerSet);
  const total = costs.reduce((a, b) => a + b, 0) * secondsPerSet;
  return Math.max(1, Math.ceil(total / usable));
}

/**
 * Which boot each policy goes to: the costliest first, each into the boot with the
 * least so far (ties to the lowest boot), so the boots finish close together. The
 * result is the same for the same input.
 */
export function spreadOverBoots(costs: readonly number[], boots: number): number[] {
  const load = new Array<number>(boots).fill(0);
  const out = new Array<number>(costs.length).fill(0);
  const order = costs.map((c, i) => ({ c, i })).sort((a, b) => b.c - a.c || a.i - b.i);
  for (const { c, i } of order) {
    let best = 0;
    for (let b = 1; b < boots; b++) if (load[b]! < load[best]!) best = b;
    out[i] = best;
    load[best]! += c;
  }
  return out;
}

/**
 * A policy whose hooks export every hit (no selectors): under TCG its events slow
 * every later load in the same agent, raw_syscalls/sys_enter above all (measured: a
 * one-set policy loaded after raw-syscalls took 75 s instead of 10).
 */
export function floods(policy: Policy): 0 | 1 | 2 {
  const unfiltered = policy.hooks.filter((h) => !hasSelectors(policy, h));
  if (unfiltered.some((h) => (h.kind === 'tracepoint' || h.kind === 'rawtp') && h.name.startsWith('raw_syscalls/'))) return 2;
  return unfiltered.length > 0 ? 1 : 0;
}

/** The order a boot adds its policies in: quiet ones first, the floods last; stable otherwise. */
export function loadOrder(policies: readonly Policy[], indices: readonly number[]): number[] {
  return [...indices].sort((a, b) => floods(policies[a]!) - floods(policies[b]!) || a - b);
}

/**
 * The boot of each policy. Policies that export every syscall get a boot of their own:
 * under TCG their events overflow the agent's ring buffer, and the events of every other
 * policy in that agent are lost with them (measured: four triggers went unseen). The rest
 * are packed by cost into as many boots as the budget needs, or into the boots asked for.
 */
export function planBoots(policies: readonly Policy[], costs: readonly number[], opts: { boots: number | 'auto'; budgetSeconds: number; secondsPerSet: number }): { count: number; bootOf: number[] } {
  const flood = policies.map((p) => floods(p) === 2);
  const quiet = policies.flatMap((_, i) => (flood[i] ? [] : [i]));
  const alone = flood.some(Boolean) && quiet.length > 0 ? 1 : 0;
  const wanted = opts.boots === 'auto'
    ? bootsNeeded(quiet.map((i) => costs[i]!), opts.budgetSeconds, opts.secondsPerSet) + alone
    : Math.max(1, Math.min(opts.boots, policies.length));
  const shared = Math.max(1, wanted - (wanted > 1 ? alone : 0));
  const spread = spreadOverBoots(quiet.map((i) => costs[i]!), shared);
  const bootOf = policies.map((_, i) => (flood[i] ? wanted - 1 : spread[quiet.indexOf(i)]!));
  return { count: wanted, bootOf };
}
