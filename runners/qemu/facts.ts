/**
 * A QEMU cell's facts from its kernel, before it boots: the options suites decide by,
 * and the active LSM list the kernel will build. The list follows the kernel's own
 * rules (security/security.c): an early lockdown first, then capability, then the
 * `lsm=` list (or CONFIG_LSM without one) keeping only the LSMs built in and only the
 * first "exclusive" major LSM, then the LSMs that always come last (ima, evm from 6.9).
 * The probe suite checks the list the guest reports against this one on every boot.
 */
import { kernelAtLeast } from '../../core/facts.js';
import type { Cell } from '../../matrix/cell.js';

/** Kernel config options recorded in run.json: the ones bpfgate's verdicts depend on. */
export const RECORDED_CONFIG = [
  'CONFIG_BPF_LSM',
  'CONFIG_LSM',
  'CONFIG_DEBUG_INFO_BTF',
  'CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS',
  'CONFIG_FUNCTION_ERROR_INJECTION',
  'CONFIG_BPF_KPROBE_OVERRIDE',
  'CONFIG_FPROBE',
  'CONFIG_KPROBES',
  'CONFIG_UPROBES',
  'CONFIG_FTRACE_SYSCALLS',
  'CONFIG_BPF_JIT',
  'CONFIG_IKCONFIG_PROC',
] as const;

/** The LSM names the kernel knows, and the option that builds each. */
const LSM_OPTION: Record<string, string> = {
  lockdown: 'CONFIG_SECURITY_LOCKDOWN_LSM',
  landlock: 'CONFIG_SECURITY_LANDLOCK',
  yama: 'CONFIG_SECURITY_YAMA',
  loadpin: 'CONFIG_SECURITY_LOADPIN',
  safesetid: 'CONFIG_SECURITY_SAFESETID',
  apparmor: 'CONFIG_SECURITY_APPARMOR',
  selinux: 'CONFIG_SECURITY_SELINUX',
  smack: 'CONFIG_SECURITY_SMACK',
  tomoyo: 'CONFIG_SECURITY_TOMOYO',
  bpf: 'CONFIG_BPF_LSM',
  ipe: 'CONFIG_SECURITY_IPE',
};

/** LSM_FLAG_EXCLUSIVE: only the first of these in the order is enabled. */
const EXCLUSIVE = new Set(['selinux', 'smack', 'apparmor']);

export function recordedConfig(config: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const option of RECORDED_CONFIG) out[option] = config.get(option) ?? 'absent';
  return out;
}

/** The `lsm=` list of the cell's boot parameters, if it sets one. */
export function bootLsmArg(bootArgs: readonly string[]): string[] | undefined {
  const arg = [...bootArgs].reverse().find((a) => a.startsWith('lsm='));
  return arg?.slice(4).split(',').filter(Boolean);
}

/** The active LSM list (/sys/kernel/security/lsm) a kernel with this config and these boot args builds. */
export function predictLsmList(config: ReadonlyMap<string, string>, bootArgs: readonly string[], release: string): string[] {
  const built = (name: string) => {
    const option = LSM_OPTION[name];
    return option !== undefined && (config.get(option) === 'y');
  };
  const out: string[] = [];
  if (config.get('CONFIG_SECURITY_LOCKDOWN_LSM_EARLY') === 'y' && built('lockdown')) out.push('lockdown');
  out.push('capability');
  const order = bootLsmArg(bootArgs) ?? (config.get('CONFIG_LSM') ?? '').split(',').filter(Boolean);
  let exclusive = false;
  for (const name of order) {
    if (out.includes(name) || !built(name)) continue;
    if (EXCLUSIVE.has(name)) {
      if (exclusive) continue;
      exclusive = true;
    }
    out.push(name);
  }
  // Since 6.9 ima and evm are LSMs of their own, ordered last whatever lsm= says.
  if (kernelAtLeast(release, 6, 9)) {
    if (config.get('CONFIG_IMA') === 'y') out.push('ima');
    if (config.get('CONFIG_EVM') === 'y') out.push('evm');
  }
  return out;
}

/** Facts of a cell that follow from its kernel alone. */
export function kernelDerivedFacts(cell: Cell, config: ReadonlyMap<string, string>, release: string) {
  return { lsm: predictLsmList(config, cell.bootArgs, release), config: recordedConfig(config) };
}
