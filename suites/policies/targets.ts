/**
 * What the policies suite registers in a guest: one tracefs probe per distinct
 * kernel target, shared by every policy hook and trigger hint that names it.
 * Pure planning: policy hooks and trigger hints in, a numbered target list out.
 *
 * - kprobes: the symbol the agent would attach to on this arch (`__x64_sys_*` /
 *   `__arm64_sys_*` for syscalls), registered as written even when the static
 *   lint already says it cannot exist, so that the guest measures it;
 * - kretprobes: an `r:` probe on the same symbol;
 * - LSM hooks: a kprobe on `bpf_lsm_<hook>`, the stub the kernel calls only when
 *   the BPF LSM is active, so its hit count is the BPF LSM's own pulse;
 * - tracepoints and raw tracepoints: the tracefs event, counted by a hist trigger.
 * Uprobes, USDTs and generated lists have no target: their binaries are not in the
 * guest, or the agent expands them (the tetragon-vm lane covers them).
 */
import type { Arch } from '../../matrix/cell.js';
import type { Hook, Policy } from '../../policy/model.js';
import { ARCH_PREFIX, cutSyscallPrefix } from '../../policy/syscalls.js';
import { parseHookHint } from '../triggers/model.js';
import type { Trigger } from '../triggers/model.js';

export type TargetKind = 'kprobe' | 'kretprobe' | 'tracepoint';

export interface Target {
  /** tracefs event name, `b<N>`. */
  name: string;
  kind: TargetKind;
  /** Kernel symbol, or `subsystem/event` for tracepoints. */
  what: string;
}

/** Why a hook has no target in the guest. */
export interface Untargeted {
  why: string;
}

export interface TargetPlan {
  targets: Target[];
  /** Each policy hook's target, or why it has none. */
  forHook: Map<Hook, Target | Untargeted>;
  /** Each trigger's hints, resolved to targets (hints that cannot be targeted are left out). */
  forTrigger: Map<Trigger, { hint: string; target: Target }[]>;
}

/** The kernel symbol a kprobe hook attaches to on `arch`, as the agent would try it. */
export function kprobeSymbol(hook: Pick<Hook, 'name' | 'syscall' | 'symbols'>, arch: Arch): string {
  const resolved = hook.symbols[arch];
  if (resolved) return resolved;
  if (cutSyscallPrefix(hook.name).prefix) return hook.name; // an arch prefix as written: the guest shows it missing
  return hook.syscall ? ARCH_PREFIX[arch] + hook.name : hook.name;
}

function hookTarget(hook: Hook, arch: Arch): { kind: TargetKind; what: string } | Untargeted {
  switch (hook.kind) {
    case 'kprobe':
      if (hook.generated) return { why: `generated list ${hook.list ?? ''}: the agent expands it at load time` };
      return { kind: hook.kretprobe ? 'kretprobe' : 'kprobe', what: kprobeSymbol(hook, arch) };
    case 'lsm':
      return { kind: 'kprobe', what: `bpf_lsm_${hook.name}` };
    case 'tracepoint':
    case 'rawtp':
      return { kind: 'tracepoint', what: hook.name };
    case 'uprobe':
    case 'usdt':
      return { why: `${hook.kind} targets are user binaries, which the kernel-lane guest does not carry` };
  }
}

function hintTarget(hint: string, arch: Arch): { kind: TargetKind; what: string } | undefined {
  const parsed = parseHookHint(hint);
  if ('problem' in parsed) return undefined;
  switch (parsed.kind) {
    case 'kprobe': {
      const syscall = parsed.name.startsWith('sys_');
      return { kind: 'kprobe', what: kprobeSymbol({ name: parsed.name, syscall, symbols: {} }, arch) };
    }
    case 'lsm':
      return { kind: 'kprobe', what: `bpf_lsm_${parsed.name}` };
    case 'tracepoint':
    case 'rawtp':
      return { kind: 'tracepoint', what: parsed.name };
    default:
      return undefined;
  }
}

export function planTargets(policies: Policy[], triggers: Trigger[], arch: Arch): TargetPlan {
  const byKey = new Map<string, Target>();
  const targets: Target[] = [];
  const intern = (t: { kind: TargetKind; what: string }): Target => {
    const key = `${t.kind}:${t.what}`;
    let target = byKey.get(key);
    if (!target) {
      target = { name: `b${targets.length}`, ...t };
      byKey.set(key, target);
      targets.push(target);
    }
    return target;
  };
  const forHook = new Map<Hook, Target | Untargeted>();
  for (const policy of policies) {
    for (const hook of policy.hooks) {
      const t = hookTarget(hook, arch);
      forHook.set(hook, 'why' in t ? t : intern(t));
    }
  }
  const forTrigger = new Map<Trigger, { hint: string; target: Target }[]>();
  for (const trigger of triggers) {
    const hints: { hint: string; target: Target }[] = [];
    for (const hint of trigger.hooks) {
      const t = hintTarget(hint, arch);
      if (t) hints.push({ hint, target: intern(t) });
    }
    forTrigger.set(trigger, hints);
  }
  return { targets, forHook, forTrigger };
}

/** The files the guest step reads: `NAME p|r SYMBOL` per kprobe, `NAME subsystem/event` per tracepoint. */
export function targetFiles(plan: TargetPlan): { kprobes: string; tracepoints: string } {
  const kprobes = plan.targets
    .filter((t) => t.kind !== 'tracepoint')
    .map((t) => `${t.name} ${t.kind === 'kretprobe' ? 'r' : 'p'} ${t.what}`);
  const tracepoints = plan.targets.filter((t) => t.kind === 'tracepoint').map((t) => `${t.name} ${t.what}`);
  return { kprobes: kprobes.join('\n') + '\n', tracepoints: tracepoints.join('\n') + '\n' };
}
