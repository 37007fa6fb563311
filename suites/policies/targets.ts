/**
 * What the policies suite registers in a guest: one tracefs probe per distinct
 * target, shared by every policy hook and trigger hint that names it.
 * Pure planning: policy hooks and trigger hints in, a numbered target list out.
 *
 * - kprobes: the symbol the agent would attach to on this arch (`__x64_sys_*` /
 *   `__arm64_sys_*` for syscalls), registered as written even when the static
 *   lint already says it cannot exist, so that the guest measures it. A name the
 *   agent attaches as written and its BPF library retries with the arch's syscall
 *   prefix (Hook.retryWithPrefix) carries that prefixed name as its fallback;
 * - kretprobes: an `r:` probe on the same symbol;
 * - LSM hooks: a kprobe on `bpf_lsm_<hook>`, the stub the kernel calls only when
 *   the BPF LSM is active, so its hit count is the BPF LSM's own pulse;
 * - tracepoints and raw tracepoints: the tracefs event, counted by a hist trigger;
 * - uprobes and USDTs: the binary's path and symbol (or offset), or provider and
 *   probe; the guest finds the file offset in its image's uprobe index and the path
 *   on the cell itself (a binary the cell lacks is a finding, not a gap);
 * - generated lists: the list's type and pattern; the guest expands them as the agent
 *   does on its node, from the kernel's own lists (guest/policies.sh), each expanded
 *   function a kprobe of its own, their hits counted together.
 * The loader's hook (perf_event_mmap_output) runs only for mmap events, which only a
 * perf event that asks for them produces: where it is a target, the guest holds such
 * events open as the agent's loader sensor does (`mmapEvents`).
 */
import type { Arch } from '../../matrix/cell.js';
import { LOADER_SYMBOL } from '../../policy/hooks.js';
import type { Hook, Policy } from '../../policy/model.js';
import { ARCH_PREFIX, cutSyscallPrefix, syscallNames } from '../../policy/syscalls.js';
import { parseHookHint } from '../triggers/model.js';
import type { Trigger } from '../triggers/model.js';

export type TargetKind = 'kprobe' | 'kretprobe' | 'tracepoint' | 'uprobe' | 'usdt' | 'list';

export interface Target {
  /** tracefs event name, `b<N>` (a generated list's functions: `b<N>_<K>`). */
  name: string;
  kind: TargetKind;
  /**
   * Kernel symbol; `subsystem/event` for tracepoints; `PATH:SYMBOL` (or `PATH:+0xOFFSET`)
   * for uprobes; `PATH:PROVIDER:NAME` for USDTs; `TYPE` or `TYPE:PATTERN` for lists.
   */
  what: string;
  /** kprobes: the name the agent's BPF library tries when the kernel refuses `what`. */
  fallback?: string;
  /** Generated lists: what the guest expands, and whether each function gets a return probe. */
  list?: { type: 'generated_syscalls' | 'generated_ftrace'; pattern?: string; ret: boolean };
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
  /** The loader's hook is a target: the guest opens the mmap events it runs for. */
  mmapEvents: boolean;
}

/**
 * At most this many functions of one generated list are registered. Registering and arming
 * a kprobe costs the guest about 40 ms under TCG (measured on x86_64 6.12: 14 ms to register,
 * 25 ms to enable), so 1000 is 40 s of a cell's budget for one list; a list beyond it is
 * reported (`list-too-large`), not registered. The arch's syscalls (about 370) fit.
 */
export const GENERATED_LIST_CAP = 1000;

/** The kernel symbol a kprobe hook attaches to on `arch`, as the agent would try it. */
export function kprobeSymbol(hook: Pick<Hook, 'name' | 'syscall' | 'symbols'>, arch: Arch): string {
  const resolved = hook.symbols[arch];
  if (resolved) return resolved;
  if (cutSyscallPrefix(hook.name).prefix) return hook.name; // an arch prefix as written: the guest shows it missing
  return hook.syscall ? ARCH_PREFIX[arch] + hook.name : hook.name;
}

type Planned = Omit<Target, 'name'>;

function hookTarget(hook: Hook, arch: Arch): Planned | Untargeted {
  switch (hook.kind) {
    case 'kprobe': {
      const kind = hook.kretprobe ? 'kretprobe' : 'kprobe';
      if (hook.generated) {
        const type = hook.generated.type;
        if (type !== 'generated_syscalls' && type !== 'generated_ftrace') return { why: `generated list ${hook.list ?? ''} of unknown type ${type}` };
        if (type === 'generated_ftrace' && !hook.generated.pattern) return { why: `generated_ftrace list ${hook.list ?? ''} has no pattern: the agent refuses it` };
        const pattern = type === 'generated_ftrace' ? hook.generated.pattern : undefined;
        return { kind: 'list', what: pattern === undefined ? type : `${type}:${pattern}`, list: { type, ...(pattern !== undefined ? { pattern } : {}), ret: hook.kretprobe } };
      }
      if (hook.retryWithPrefix && !cutSyscallPrefix(hook.name).prefix) {
        // Attached as written; the agent's library retries a refused name with the prefix.
        return { kind, what: hook.name, fallback: ARCH_PREFIX[arch] + hook.name };
      }
      return { kind, what: kprobeSymbol(hook, arch) };
    }
    case 'lsm':
      return { kind: 'kprobe', what: `bpf_lsm_${hook.name}` };
    case 'tracepoint':
    case 'rawtp':
      return { kind: 'tracepoint', what: hook.name };
    case 'uprobe':
      // An absolute address (`addrs`) would need the binary's segments to become an offset.
      if (/:@/.test(hook.name)) return { why: 'uprobe by absolute address (addrs): bpfgate places uprobes by symbol or file offset' };
      return { kind: 'uprobe', what: hook.name };
    case 'usdt':
      return { kind: 'usdt', what: hook.name };
  }
}

function hintTarget(hint: string, arch: Arch): Planned | undefined {
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
    case 'uprobe':
    case 'usdt':
      return { kind: parsed.kind, what: parsed.name };
  }
}

export function planTargets(policies: Policy[], triggers: Trigger[], arch: Arch): TargetPlan {
  const byKey = new Map<string, Target>();
  const targets: Target[] = [];
  const intern = (t: Planned): Target => {
    const key = `${t.kind}:${t.what}${t.fallback ? `|${t.fallback}` : ''}${t.list?.ret ? '|ret' : ''}`;
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
  const mmapEvents = targets.some((t) => (t.kind === 'kprobe' || t.kind === 'kretprobe') && t.what === LOADER_SYMBOL);
  return { targets, forHook, forTrigger, mmapEvents };
}

/** The files the guest step reads (suites/policies/guest/policies.sh). */
export interface TargetFiles {
  /** `NAME p|r SYMBOL [FALLBACK]` per kprobe. */
  kprobes: string;
  /** `NAME subsystem/event` per tracepoint. */
  tracepoints: string;
  /** `NAME u PATH SYMBOL|+0xOFFSET` per uprobe, `NAME n PATH PROVIDER PROBE` per USDT. */
  uprobes: string;
  /** `NAME p|r TYPE PATTERN` per generated list (`-`: no pattern). */
  lists: string;
  /** The arch's syscall wrappers, one per line, when a generated_syscalls list is planned. */
  syscalls: string;
}

/** `PATH:REST` split at the first colon after the path (paths are absolute and colon-free). */
function splitBinary(what: string): [string, string[]] {
  const [path, ...rest] = what.split(':');
  return [path ?? '', rest];
}

export function targetFiles(plan: TargetPlan, arch: Arch): TargetFiles {
  const lines = (kinds: TargetKind[], line: (t: Target) => string) => {
    const out = plan.targets.filter((t) => kinds.includes(t.kind)).map(line);
    return out.length ? out.join('\n') + '\n' : '';
  };
  const lists = plan.targets.filter((t) => t.kind === 'list');
  return {
    kprobes: lines(['kprobe', 'kretprobe'], (t) => `${t.name} ${t.kind === 'kretprobe' ? 'r' : 'p'} ${t.what}${t.fallback ? ` ${t.fallback}` : ''}`),
    tracepoints: lines(['tracepoint'], (t) => `${t.name} ${t.what}`),
    uprobes: lines(['uprobe', 'usdt'], (t) => {
      const [path, rest] = splitBinary(t.what);
      return t.kind === 'uprobe' ? `${t.name} u ${path} ${rest.join(':')}` : `${t.name} n ${path} ${rest.join(' ')}`;
    }),
    lists: lines(['list'], (t) => `${t.name} ${t.list?.ret ? 'r' : 'p'} ${t.list?.type} ${t.list?.pattern ?? '-'}`),
    // Tetragon's generated_syscalls: the arch's syscall table, each name with the arch prefix,
    // kept where the kernel has the function (the guest checks that).
    syscalls: lists.some((t) => t.list?.type === 'generated_syscalls')
      ? syscallNames(arch).map((n) => `${ARCH_PREFIX[arch]}sys_${n}`).join('\n') + '\n'
      : '',
  };
}
