/**
 * Syscalls per arch, and the kernel symbol a policy's syscall hook becomes on each arch.
 *
 * The tables (policy/data/syscalls.json) come from the kernel's uapi headers as Debian's
 * linux-libc-dev installs them; scripts/gen-syscall-tables.mjs regenerates them.
 * Symbol resolution follows Tetragon (pkg/arch, pkg/sensors/tracing/{generickprobe,syscall_list,
 * enforcer}.go): a `syscall: true` call gets the arch prefix (`__x64_`, `__arm64_`) unless it
 * already has one, and a prefix of another arch is kept as written, so that symbol cannot exist
 * on this arch. Syscall list values (`sys_NAME`, `ABI/sys_NAME`, `__x64_sys_NAME`) are turned
 * into symbols by their ABI: x64 -> `__x64_`, i386 -> `__ia32_`, arm64 and arm32 -> `__arm64_`.
 *
 * Invariant: a hook is declared missing on an arch only for a reason that holds for sure: a
 * prefix of another arch, a value Tetragon rejects, or a syscall that the other arch's table has
 * and this arch's table lacks (the kernel may still build sys_open on arm64, but no syscall
 * table entry calls it, so a hook there never fires). A name neither table knows (entry names
 * such as `sys_newfstat` differ from syscall names) is kept: the kernel lane checks it.
 */
import type { Arch } from '../matrix/cell.js';
import type { Finding, Policy } from './model.js';
import tables from './data/syscalls.json' with { type: 'json' };

/** The syscall ABIs of the tables: the two arches, plus x86_64's IA32 emulation. */
export type SyscallAbi = 'x86_64' | 'i386' | 'arm64';

export const ARCHES: readonly Arch[] = ['x86_64', 'arm64'];

/** Where the tables come from: the linux-libc-dev package and header of each ABI. */
export const SYSCALL_TABLES = {
  package: tables.package,
  sources: Object.fromEntries(Object.entries(tables.abis).map(([abi, t]) => [abi, t.source])) as Record<SyscallAbi, string>,
};

const TABLE: Record<SyscallAbi, Readonly<Record<string, number>>> = {
  x86_64: tables.abis.x86_64.syscalls,
  i386: tables.abis.i386.syscalls,
  arm64: tables.abis.arm64.syscalls,
};

/** The syscall number of `name` on `abi`, or undefined when the ABI has no such syscall. */
export function syscallNumber(abi: SyscallAbi, name: string): number | undefined {
  return Object.hasOwn(TABLE[abi], name) ? TABLE[abi][name] : undefined;
}

export function hasSyscall(abi: SyscallAbi, name: string): boolean {
  return syscallNumber(abi, name) !== undefined;
}

/** Syscall names of an ABI, in number order. */
export function syscallNames(abi: SyscallAbi): string[] {
  return Object.keys(TABLE[abi]);
}

/** Tetragon's syscall symbol prefixes, the arch whose kernel has them, and their ABI. */
const PREFIXES = [
  { prefix: '__x64_', arch: 'x86_64', abi: 'x86_64' },
  { prefix: '__arm64_', arch: 'arm64', abi: 'arm64' },
  { prefix: '__ia32_', arch: 'x86_64', abi: 'i386' },
] as const;

export const ARCH_PREFIX: Record<Arch, string> = { x86_64: '__x64_', arm64: '__arm64_' };

/** ABI names of syscall list values ("i386/sys_kill"), as Tetragon spells them. */
const LIST_ABIS = {
  x64: { arch: 'x86_64', prefix: '__x64_', table: 'x86_64' },
  i386: { arch: 'x86_64', prefix: '__ia32_', table: 'i386' },
  arm64: { arch: 'arm64', prefix: '__arm64_', table: 'arm64' },
  // 32-bit arm syscalls are implemented by the arm64 functions (Tetragon: arm32 -> __arm64_).
  arm32: { arch: 'arm64', prefix: '__arm64_', table: undefined },
} as const;
type ListAbi = keyof typeof LIST_ABIS;

/** What a hook becomes on one arch: its kernel symbol, or why it cannot exist there. */
export type Resolution = { symbol: string } | { missing: string };

/** Splits an arch prefix off a symbol (Tetragon's CutSyscallPrefix). */
export function cutSyscallPrefix(symbol: string): { prefix?: (typeof PREFIXES)[number]; name: string } {
  const prefix = PREFIXES.find((p) => symbol.startsWith(p.prefix));
  return prefix ? { prefix, name: symbol.slice(prefix.prefix.length) } : { name: symbol };
}

/**
 * The symbol of a kprobe `call` on `arch`. With `syscall: true` (the CRD's default) Tetragon
 * adds the arch prefix (AddSyscallPrefix); a call that already has a prefix is kept as
 * written on every arch. With `syscall: false` the name is looked up as written, in the
 * kernel's BTF first: a plain sys_NAME of a syscall does not exist on x86_64 or arm64, whose
 * syscalls are built behind wrappers (__x64_sys_NAME, __arm64_sys_NAME), and the agent refuses
 * it ("validation error: call \"sys_execve\": not found", measured with v1.5.0).
 */
export function resolveKprobeCall(call: string, syscall: boolean, arch: Arch): Resolution {
  const { prefix, name } = cutSyscallPrefix(call);
  if (prefix) {
    if (prefix.arch !== arch) return { missing: `${call} is an ${prefix.arch} symbol; there is no such symbol on ${arch}` };
    return checkEntry(call, name, prefix.abi, arch);
  }
  if (!syscall) {
    if (isSyscallName(call)) {
      return { missing: `syscall: false makes the agent look ${call} up as written, and ${arch} has only ${ARCH_PREFIX[arch]}${call} (syscall wrappers): write syscall: true` };
    }
    return { symbol: call };
  }
  const symbol = ARCH_PREFIX[arch] + call;
  if (!call.startsWith('sys_')) {
    return { missing: `syscall: true makes Tetragon attach to ${symbol}, which is not a syscall entry point: write sys_${call}` };
  }
  return checkEntry(symbol, call, arch, arch);
}

/**
 * Where one value of a plain list (no `type`) ends up on `arch`. The agent attaches the value
 * as written; under a `syscall: true` kprobe its BTF check and its BPF library (cilium/ebpf
 * link.Kprobe) both retry a missing name with the arch's prefix, so a sys_NAME lands on the
 * wrapper (measured with v1.5.0: "Added kprobe function=sys_getcwd", enabled). Under
 * `syscall: false` the name is looked up as written, like a call.
 */
export function resolvePlainListValue(value: string, syscall: boolean, arch: Arch): Resolution {
  if (syscall && !cutSyscallPrefix(value).prefix && isSyscallName(value)) return resolveKprobeCall(value, true, arch);
  return resolveKprobeCall(value, false, arch);
}

/** `sys_NAME` of a syscall either 64-bit table knows. */
function isSyscallName(call: string): boolean {
  const name = call.startsWith('sys_') ? call.slice('sys_'.length) : undefined;
  return name !== undefined && (hasSyscall('x86_64', name) || hasSyscall('arm64', name));
}

/**
 * The symbol of one value of a `type: syscalls` list on `arch` (Tetragon's SyscallVal.Symbol):
 * "sys_dup" (the arch's own ABI), "i386/sys_dup", "arm32/sys_dup", "__x64_sys_dup", ...
 */
export function resolveSyscallListValue(value: string, arch: Arch): Resolution {
  const parts = value.split('/');
  if (parts.length > 2) return { missing: `Tetragon rejects syscall list value "${value}": at most one ABI/ prefix` };
  const written = parts.length === 2 ? parts[1]! : parts[0]!;
  const { prefix, name } = cutSyscallPrefix(written);
  let abi: ListAbi;
  if (parts.length === 2) {
    const given = parts[0]!;
    if (!Object.hasOwn(LIST_ABIS, given)) return { missing: `Tetragon rejects syscall list value "${value}": unknown ABI ${given} (x64, i386, arm64, arm32)` };
    abi = given as ListAbi;
    // A prefixed name must belong to the named ABI's arch (Tetragon's validateABI).
    const fits = !prefix || (prefix.abi === 'i386' ? abi === 'i386' : LIST_ABIS[abi].arch === prefix.arch);
    if (!fits) return { missing: `Tetragon rejects syscall list value "${value}": ${prefix!.prefix} does not belong to ABI ${abi}` };
  } else {
    abi = prefix ? (prefix.abi === 'x86_64' ? 'x64' : prefix.abi) : arch === 'x86_64' ? 'x64' : 'arm64';
  }
  const target = LIST_ABIS[abi];
  if (!name.startsWith('sys_')) {
    return { missing: `Tetragon rejects syscall list value "${value}": syscall list values are sys_NAME` };
  }
  const symbol = target.prefix + name;
  if (target.arch !== arch) {
    const what = symbol === value ? `${value} is an ${target.arch} symbol` : `${value} is ${symbol}, an ${target.arch} symbol`;
    return { missing: `${what}; there is no such symbol on ${arch}` };
  }
  return target.table ? checkEntry(symbol, name, target.table, arch) : { symbol };
}

/**
 * The symbol of one enforcer call on `arch` (Tetragon's enforcer sensor): arch-prefixed names
 * are kept, sys_NAME gets the arch prefix, security_* functions are kept, anything else is refused.
 */
export function resolveEnforcerCall(call: string, arch: Arch): Resolution {
  if (cutSyscallPrefix(call).prefix || call.startsWith('sys_')) return resolveKprobeCall(call, true, arch);
  if (call.startsWith('security_')) return { symbol: call };
  return { missing: `Tetragon's enforcer takes only syscalls and security_* functions, not ${call}` };
}

/**
 * Checks `symbol` (whose part after the prefix is `entry`) against the syscall tables.
 * Only sys_NAME entries are checked; compat_sys_* and others are kept unverified.
 */
function checkEntry(symbol: string, entry: string, abi: SyscallAbi, arch: Arch): Resolution {
  if (!entry.startsWith('sys_')) {
    if (entry.startsWith('compat_sys_')) return { symbol };
    return { missing: `${symbol} is not a syscall entry point (expected a sys_NAME after the arch prefix)` };
  }
  const name = entry.slice('sys_'.length);
  // 32-bit entry names follow other rules (sys_ia32_*, old syscalls): they are not checked.
  if (abi === 'i386' || hasSyscall(abi, name)) return { symbol };
  const other: SyscallAbi = abi === 'x86_64' ? 'arm64' : 'x86_64';
  // Entry names can differ from syscall names (umount2 -> sys_umount): a name that neither
  // 64-bit table knows says nothing, and the kernel lane decides.
  if (!hasSyscall(other, name)) return { symbol };
  // The kernel may still build the function, but no syscall table entry ever calls it.
  return { missing: `${arch} has no ${name} syscall (${other} has it): nothing calls ${symbol} on ${arch}` };
}

/** A finding for every kprobe hook of `policy` that cannot exist on one of `arches`. */
export function portabilityFindings(policy: Policy, arches: readonly Arch[]): Finding[] {
  const findings: Finding[] = [];
  for (const hook of policy.hooks) {
    if (hook.kind !== 'kprobe' || hook.generated) continue;
    for (const arch of arches) {
      if (hook.symbols[arch] !== undefined) continue;
      const finding: Finding = {
        arch,
        reason: 'symbol-missing',
        message: hook.missing?.[arch] ?? `${hook.name} has no kernel symbol on ${arch}`,
        hook: hook.id,
        source: hook.source,
      };
      if (hook.path !== undefined) finding.path = hook.path;
      findings.push(finding);
    }
  }
  return findings;
}
