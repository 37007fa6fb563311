/**
 * The policy model: what bpfgate knows about one TracingPolicy document once it
 * is parsed. Hooks and feature needs are derived here once, and every suite reads them.
 */
import type { SourceRef } from '../core/check.js';
import type { Arch } from '../matrix/cell.js';

export type PolicyKind = 'TracingPolicy' | 'TracingPolicyNamespaced';

export type HookKind = 'kprobe' | 'tracepoint' | 'rawtp' | 'lsm' | 'uprobe' | 'usdt';

export interface Hook {
  kind: HookKind;
  /**
   * What the policy names: a kprobe call ("tcp_connect", "sys_setuid", "__x64_sys_write"),
   * a tracepoint "subsystem/event", an LSM hook ("file_open"), "binary:symbol" for uprobes,
   * "binary:provider:name" for usdts.
   */
  name: string;
  /** Stable id used as the check name suffix: `${kind}:${name}`. */
  id: string;
  /** kprobes: `syscall: true` in the policy (or the hook came from a syscalls list). */
  syscall: boolean;
  /** kprobes: `return: true`. */
  kretprobe: boolean;
  /**
   * kprobes: the kernel symbol per arch, resolved as Tetragon does it
   * (`__x64_sys_*` / `__arm64_sys_*` for syscalls). Absent when the hook cannot
   * exist on that arch (an `__x64_sys_*` name on arm64, a syscall arm64 lacks).
   */
  symbols: Partial<Record<Arch, string>>;
  /** Actions used by this hook's selectors (Override, Sigkill, NotifyEnforcer, ...). */
  actions: string[];
  /** The list this hook was expanded from (`call: "list:NAME"`), if any. */
  list?: string;
  source: SourceRef;
  /** JSON path of the node that names the hook ("spec.kprobes[0].call", "spec.lists[1].values[2]"). */
  path?: string;
  /** kprobes: why the hook cannot exist on an arch, for each arch absent from `symbols`. */
  missing?: Partial<Record<Arch, string>>;
  /**
   * kprobes from a generated list (`generated_syscalls`, `generated_ftrace`): the agent builds
   * the list on the node, so `symbols` is empty and the hook stands for the whole list.
   */
  generated?: { type: string; pattern?: string };
  /** kprobes: the hook is a call of `spec.enforcers[]`, not of `spec.kprobes[]`. */
  enforcer?: boolean;
  /**
   * kprobes: the agent attaches the name as written and its BPF library (cilium/ebpf
   * link.Kprobe) retries a name the kernel refuses with the arch's syscall prefix: the values
   * of a plain list under a `syscall: true` kprobe. `symbols` holds where it ends up.
   */
  retryWithPrefix?: boolean;
}

/** Kernel features a policy needs. Optional accelerations (kprobe.multi) are not needs. */
export type Feature =
  | 'kprobe'
  | 'tracepoint'
  | 'raw-tracepoint'
  | 'bpf-lsm'
  | 'trampoline'
  | 'override'
  | 'sigkill'
  | 'uprobe'
  | 'usdt';

export interface Need {
  feature: Feature;
  /** Why the policy needs it, naming the hook: "lsmhooks[0] file_open". */
  because: string;
  source: SourceRef;
  /**
   * override: how it can be met. `override-return` is bpf_override_return (error injection,
   * syscalls); `fmod-ret` is a trampoline program (security_* functions).
   */
  via?: 'override-return' | 'fmod-ret';
}

/**
 * Where a policy file was found: the `--policies` path it came from and its path relative
 * to that path. Subjects name a file by `relPath`, so they do not depend on the working
 * directory.
 */
export interface PolicyOrigin {
  /** The `--policies` path the file was found under, as given; for a file named directly, its directory. */
  root: string;
  /** The file's path relative to `root`, `/`-separated, never with `..` (a file named directly: its base name). */
  relPath: string;
}

export interface Policy {
  kind: PolicyKind;
  name: string;
  namespace?: string;
  /** File and line of the document start (its `apiVersion`/`kind` line). */
  source: SourceRef;
  /** The `--policies` root the file was found under, and its path relative to it. */
  origin: PolicyOrigin;
  /** Index of the document in its file (0-based). */
  docIndex: number;
  /** The parsed document as plain JSON. */
  doc: Record<string, unknown>;
  hooks: Hook[];
  needs: Need[];
}

/** A positioned problem found while reading or validating a policy file. */
export interface PolicyProblem {
  file: string;
  line: number;
  column: number;
  /** Reason code: yaml-invalid or schema-invalid. */
  reason: 'yaml-invalid' | 'schema-invalid';
  /** JSON path into the document ("spec.kprobes[0].selectors[0].matchActions[0].action"), or "" for the whole file. */
  path: string;
  /** Schema path of the violated rule ("#/properties/spec/..."), when the schema said it. */
  schemaPath?: string;
  message: string;
  /** yaml-invalid: the file's path relative to its `--policies` root (see PolicyOrigin), its subject. */
  relPath?: string;
}

/** A portability finding: a hook that cannot exist on an arch. */
export interface Finding {
  arch: Arch;
  reason: 'symbol-missing';
  message: string;
  hook: string;
  source: SourceRef;
  /** JSON path of the node that names the hook, as in Hook.path. */
  path?: string;
}

/**
 * A lint warning: the policy is valid and loads, but not as written everywhere it goes
 * (policy/warnings.ts). Warnings never fail lint.
 */
export interface PolicyWarning {
  /** Stable name of the warning (`namespace-on-cluster-scoped`). */
  code: string;
  message: string;
  /** JSON path of the node the warning is about (`metadata.namespace`). */
  path: string;
  line: number;
  column: number;
}
