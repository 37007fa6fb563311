/**
 * What a policy attaches to and what the kernel must offer for it: hooks and needs, derived
 * from one TracingPolicy document the way Tetragon reads it.
 *
 * - kprobes: `call` (with `syscall`, `return`), `call: "list:NAME"` expanded from spec.lists
 *   (syscalls lists per ABI, plain lists as written, generated lists as one hook that the agent
 *   expands on the node), each resolved per arch (syscalls.ts). `syscall` is true when the
 *   policy leaves it out: the CRD's default, which the agent applies when it reads a policy
 *   (Tetragon's crdutils ApplyDefaults), as the API server does;
 * - enforcers: `spec.enforcers[].calls`, kprobes on syscalls or fmod_ret on security_* functions;
 * - `spec.loader: true`: Tetragon's loader sensor, a kprobe on perf_event_mmap_output (LOADER_SYMBOL);
 * - tracepoints (`raw: true` makes it a raw tracepoint), lsmhooks, uprobes, usdts.
 * Needs: kprobe, tracepoint, raw-tracepoint, bpf-lsm + trampoline for LSM hooks, override
 * (bpf_override_return on syscalls, fmod_ret on security_* functions, which needs trampolines
 * too), sigkill for Sigkill/Signal and for enforcers, uprobe, usdt.
 *
 * Invariant: reading is defensive. A document that failed its schema still yields whatever
 * hooks can be read from it, and nothing here throws on a malformed field.
 */
import { REASONS } from '../core/reasons.js';
import type { Arch } from '../matrix/cell.js';
import type { Feature, Hook, HookKind, Need, Policy, PolicyWarning } from './model.js';
import { specOption } from './spec.js';
import { type JsonPath, type SourceDocument, formatPath } from './load.js';
import { ARCHES, type Resolution, cutSyscallPrefix, resolveEnforcerCall, resolveKprobeCall, resolvePlainListValue, resolveSyscallListValue } from './syscalls.js';

type Json = Record<string, unknown>;

/** The kernel function Tetragon's loader sensor (`spec.loader: true`) kprobes: it runs for mmap events. */
export const LOADER_SYMBOL = 'perf_event_mmap_output';

export interface HooksAndNeeds {
  hooks: Hook[];
  needs: Need[];
}

/** Hooks and needs of one policy document (`doc.value` must be the parsed document). */
export function hooksAndNeeds(doc: SourceDocument): HooksAndNeeds {
  const spec = record(record(doc.value)?.spec) ?? {};
  const out = new Collector(doc);
  const lists = array(spec.lists).map((l, index) => ({ index, list: record(l) ?? {} }));
  const findList = (name: string) => lists.find((l) => l.list.name === name);
  const overrideMethod = specOption({ doc: { spec } }, 'override-method'); // the spec read defensively above

  array(spec.kprobes).forEach((raw, i) => {
    const kp = record(raw);
    const call = string(kp?.call);
    if (!kp || call === undefined) return;
    const base = {
      // The CRD defaults `syscall` to true (+kubebuilder:default=true on KProbeSpec.Syscall).
      syscall: kp.syscall === undefined || kp.syscall === true,
      kretprobe: kp.return === true,
      actions: actionsOf(kp.selectors),
    };
    const callPath: JsonPath = ['spec', 'kprobes', i, 'call'];
    const where = `kprobes[${i}]`;
    const ignoredIfMissing = record(kp.ignore)?.callNotFound === true;
    const added: Hook[] = [];
    const listName = call.startsWith('list:') ? call.slice('list:'.length) : undefined;
    if (listName === undefined) {
      added.push(out.kprobe({ ...base, name: call, path: callPath }, (arch) => resolveKprobeCall(call, base.syscall, arch)));
    } else {
      const found = findList(listName);
      const type = string(found?.list.type)?.toLowerCase() ?? '';
      const values = array(found?.list.values);
      if (!found) {
        added.push(out.kprobe({ ...base, name: call, path: callPath, list: listName }, () => ({ missing: `list ${listName} is not defined in spec.lists` })));
      } else if (type === 'generated_syscalls' || type === 'generated_ftrace') {
        const pattern = string(found.list.pattern);
        const generated = pattern === undefined ? { type } : { type, pattern };
        const refused = values.length > 0 ? `Tetragon refuses generated list ${listName}: it has values` : undefined;
        const hook = out.kprobe(
          { ...base, syscall: type === 'generated_syscalls', name: call, path: callPath, list: listName },
          refused ? () => ({ missing: refused }) : undefined,
        );
        if (!refused) hook.generated = generated;
        added.push(hook);
      } else {
        values.forEach((v, k) => {
          const value = string(v);
          if (value === undefined) return;
          const path: JsonPath = ['spec', 'lists', found.index, 'values', k];
          // A syscalls list makes every value a syscall, whatever the kprobe's own `syscall` says.
          const syscall = type === 'syscalls' || base.syscall;
          const resolve = type === 'syscalls'
            ? (arch: Arch) => resolveSyscallListValue(value, arch)
            : (arch: Arch) => resolvePlainListValue(value, syscall, arch);
          const hook = out.kprobe({ ...base, syscall, name: value, path, list: listName }, resolve);
          // The agent attaches a plain list's values as written; its BPF library retries a name
          // the kernel refuses with the arch's syscall prefix.
          if (type !== 'syscalls' && syscall && !cutSyscallPrefix(value).prefix) hook.retryWithPrefix = true;
          added.push(hook);
        });
      }
    }
    for (const hook of added) {
      if (ignoredIfMissing && hook.missing) {
        for (const arch of Object.keys(hook.missing) as Arch[]) hook.missing[arch] += ' (ignore.callNotFound: Tetragon skips it)';
      }
      const because = `${where} ${hook.name}${hook.list && hook.name !== call ? ` (${call})` : ''}`;
      out.need('kprobe', because, hook);
      if (hasAction(hook.actions, 'override')) {
        const via = kprobeOverrideVia(hook);
        // Tetragon refuses any kprobe Override when bpf_override_return is missing, security_*
        // included (measured: "override action not supported"); those then attach through fmod_ret.
        if (via === 'fmod-ret') out.overrideNeed(`${because}: Tetragon requires bpf_override_return for any Override`, hook, 'override-return');
        out.overrideNeed(because, hook, via);
      }
      if (hasAction(hook.actions, 'sigkill', 'signal')) out.need('sigkill', `${because}: ${sigkillAction(hook.actions)} action`, hook);
    }
  });

  array(spec.enforcers).forEach((raw, i) => {
    array(record(raw)?.calls).forEach((c, k) => {
      const call = string(c);
      if (call === undefined) return;
      const callPath: JsonPath = ['spec', 'enforcers', i, 'calls', k];
      const targets: Array<{ name: string; path: JsonPath; list?: string; resolve: (arch: Arch) => Resolution }> = [];
      if (call.startsWith('list:')) {
        const listName = call.slice('list:'.length);
        const found = findList(listName);
        if (!found) {
          targets.push({ name: call, path: callPath, list: listName, resolve: () => ({ missing: `list ${listName} is not defined in spec.lists` }) });
        } else {
          const syscalls = string(found.list.type)?.toLowerCase() === 'syscalls';
          array(found.list.values).forEach((v, j) => {
            const value = string(v);
            if (value === undefined) return;
            const resolve = syscalls ? (arch: Arch) => resolveSyscallListValue(value, arch) : (arch: Arch) => resolveEnforcerCall(value, arch);
            targets.push({ name: value, path: ['spec', 'lists', found.index, 'values', j], list: listName, resolve });
          });
        }
      } else {
        targets.push({ name: call, path: callPath, resolve: (arch) => resolveEnforcerCall(call, arch) });
      }
      for (const t of targets) {
        const security = t.name.startsWith('security_');
        const hook = out.kprobe({ name: t.name, path: t.path, syscall: !security, kretprobe: false, actions: [], ...(t.list ? { list: t.list } : {}) }, t.resolve);
        hook.enforcer = true;
        const because = `enforcers[${i}] ${t.name}${t.list ? ` (list:${t.list})` : ''}`;
        // The enforcer overrides the return value and sends signals (it needs the signal helper).
        const via = security || overrideMethod === 'fmod-ret' ? 'fmod-ret' : 'override-return';
        if (via === 'override-return') out.need('kprobe', because, hook);
        out.overrideNeed(because, hook, via);
        out.need('sigkill', `${because}: enforcer`, hook);
      }
    });
  });

  if (spec.loader === true) {
    // Tetragon's loader sensor (mmap events) is a kprobe on perf_event_mmap_output.
    const symbol = LOADER_SYMBOL;
    const hook = out.kprobe({ name: symbol, path: ['spec', 'loader'], syscall: false, kretprobe: false, actions: [] }, () => ({ symbol }));
    out.need('kprobe', `loader ${symbol}`, hook);
  }

  array(spec.tracepoints).forEach((raw, i) => {
    const tp = record(raw);
    const subsystem = string(tp?.subsystem);
    const event = string(tp?.event);
    if (!tp || subsystem === undefined || event === undefined) return;
    const isRaw = tp.raw === true;
    const hook = out.hook(isRaw ? 'rawtp' : 'tracepoint', `${subsystem}/${event}`, ['spec', 'tracepoints', i], actionsOf(tp.selectors));
    const because = `tracepoints[${i}] ${hook.name}`;
    out.need(isRaw ? 'raw-tracepoint' : 'tracepoint', because, hook);
    if (hasAction(hook.actions, 'sigkill', 'signal')) out.need('sigkill', `${because}: ${sigkillAction(hook.actions)} action`, hook);
  });

  array(spec.lsmhooks).forEach((raw, i) => {
    const lsm = record(raw);
    const name = string(lsm?.hook);
    if (!lsm || name === undefined) return;
    const hook = out.hook('lsm', name, ['spec', 'lsmhooks', i, 'hook'], actionsOf(lsm.selectors));
    const because = `lsmhooks[${i}] ${name}`;
    // A BPF LSM program only runs with "bpf" in the active LSM list, and attaches through a trampoline.
    out.need('bpf-lsm', because, hook);
    out.need('trampoline', because, hook);
    if (hasAction(hook.actions, 'sigkill', 'signal')) out.need('sigkill', `${because}: ${sigkillAction(hook.actions)} action`, hook);
  });

  array(spec.uprobes).forEach((raw, i) => {
    const up = record(raw);
    const binary = string(up?.path);
    if (!up || binary === undefined) return;
    const actions = actionsOf(up.selectors);
    const targets: Array<[string, JsonPath]> = [
      ...array(up.symbols).map((s, k): [string, JsonPath] => [`${binary}:${String(s)}`, ['spec', 'uprobes', i, 'symbols', k]]),
      ...array(up.offsets).map((o, k): [string, JsonPath] => [`${binary}:+${hex(o)}`, ['spec', 'uprobes', i, 'offsets', k]]),
      ...array(up.addrs).map((a, k): [string, JsonPath] => [`${binary}:@${hex(a)}`, ['spec', 'uprobes', i, 'addrs', k]]),
    ];
    for (const [name, path] of targets) {
      const hook = out.hook('uprobe', name, path, actions);
      const because = `uprobes[${i}] ${name}`;
      out.need('uprobe', because, hook);
      if (hasAction(actions, 'sigkill', 'signal')) out.need('sigkill', `${because}: ${sigkillAction(actions)} action`, hook);
    }
  });

  array(spec.usdts).forEach((raw, i) => {
    const usdt = record(raw);
    const binary = string(usdt?.path);
    const provider = string(usdt?.provider);
    const name = string(usdt?.name);
    if (!usdt || binary === undefined || provider === undefined || name === undefined) return;
    const hook = out.hook('usdt', `${binary}:${provider}:${name}`, ['spec', 'usdts', i], actionsOf(usdt.selectors));
    const because = `usdts[${i}] ${provider}:${name}`;
    out.need('usdt', because, hook);
    if (hasAction(hook.actions, 'sigkill', 'signal')) out.need('sigkill', `${because}: ${sigkillAction(hook.actions)} action`, hook);
  });

  return { hooks: out.hooks, needs: out.needs };
}

/**
 * Lint warnings about what a policy attaches to:
 * - `syscall-defaulted`: a kprobe call without `syscall`, which the CRD defaults to true,
 *   so the agent attaches the arch's syscall wrapper (`__x64_sys_execve`); said outright,
 *   the intent is plain, and a function that is not a syscall needs `syscall: false`;
 * - `no-hooks`: nothing to attach (a pod selector alone, say): the policy loads and can
 *   never produce an event.
 */
export function hookWarnings(policy: Pick<Policy, 'doc' | 'hooks' | 'source'>): PolicyWarning[] {
  const out: PolicyWarning[] = [];
  if (policy.hooks.length === 0) {
    out.push({
      code: 'no-hooks',
      message: REASONS['no-hooks'],
      path: 'spec',
      line: policy.source.line,
      column: policy.source.column ?? 1,
    });
  }
  const kprobes = array(record(policy.doc.spec)?.kprobes);
  for (const hook of policy.hooks) {
    const entry = /^spec\.kprobes\[(\d+)\]\.call$/.exec(hook.path ?? '');
    const kp = entry ? record(kprobes[Number(entry[1])]) : undefined;
    if (!kp || 'syscall' in kp || hook.name.startsWith('list:')) continue;
    const wrappers = ARCHES.map((a) => hook.symbols[a]).filter((s): s is string => s !== undefined);
    out.push({
      code: 'syscall-defaulted',
      message: wrappers.length
        ? `\`syscall\` is not set: the CRD defaults it to true, so the agent attaches ${wrappers.join(' / ')}; write \`syscall: true\` to say so`
        : `\`syscall\` is not set: the CRD defaults it to true, so the agent looks ${hook.name} up as a syscall (with the arch prefix); write \`syscall: false\` for a kernel function`,
      path: hook.path ?? 'spec.kprobes',
      line: hook.source.line,
      column: hook.source.column ?? 1,
    });
  }
  return out;
}

/** Tetragon: Override on security_* attaches through fmod_ret; on a syscall, bpf_override_return. */
function kprobeOverrideVia(hook: Hook): 'override-return' | 'fmod-ret' | undefined {
  if (hook.name.startsWith('security_')) return 'fmod-ret';
  return hook.syscall ? 'override-return' : undefined;
}

/** Builds hooks and needs with positions; needs are unique per feature and reason. */
class Collector {
  readonly hooks: Hook[] = [];
  readonly needs: Need[] = [];
  private readonly seenNeeds = new Set<string>();

  constructor(private readonly doc: SourceDocument) {}

  hook(kind: HookKind, name: string, path: JsonPath, actions: string[]): Hook {
    const { line, column } = this.doc.locate(path);
    const hook: Hook = {
      kind,
      name,
      id: `${kind}:${name}`,
      syscall: false,
      kretprobe: false,
      symbols: {},
      actions,
      source: { file: this.doc.file, line, column },
      path: formatPath(path),
    };
    this.hooks.push(hook);
    return hook;
  }

  /** A kprobe hook with its symbol on each arch, or the reason it has none there. */
  kprobe(
    h: { name: string; path: JsonPath; syscall: boolean; kretprobe: boolean; actions: string[]; list?: string },
    resolve: ((arch: Arch) => Resolution) | undefined,
  ): Hook {
    const hook = this.hook('kprobe', h.name, h.path, h.actions);
    hook.syscall = h.syscall;
    hook.kretprobe = h.kretprobe;
    if (h.list !== undefined) hook.list = h.list;
    if (!resolve) return hook;
    for (const arch of ARCHES) {
      const r = resolve(arch);
      if ('symbol' in r) hook.symbols[arch] = r.symbol;
      else (hook.missing ??= {})[arch] = r.missing;
    }
    return hook;
  }

  need(feature: Feature, because: string, hook: Hook, via?: Need['via']): void {
    const key = `${feature}\u0000${because}`;
    if (this.seenNeeds.has(key)) return;
    this.seenNeeds.add(key);
    const need: Need = { feature, because, source: hook.source };
    if (via !== undefined) need.via = via;
    this.needs.push(need);
  }

  overrideNeed(because: string, hook: Hook, via: Need['via']): void {
    const how =
      via === 'fmod-ret'
        ? 'Override through fmod_ret'
        : via === 'override-return'
          ? 'Override through bpf_override_return (error injection)'
          : 'Override on a function that is neither a syscall nor security_*: Tetragon refuses it';
    this.need('override', `${because}: ${how}`, hook, via);
    // fmod_ret programs attach through a BPF trampoline, like LSM programs.
    if (via === 'fmod-ret') this.need('trampoline', `${because}: fmod_ret`, hook);
  }
}

/** The actions of a hook's selectors, as written, without duplicates. */
function actionsOf(selectors: unknown): string[] {
  const actions = new Set<string>();
  for (const selector of array(selectors)) {
    for (const action of array(record(selector)?.matchActions)) {
      const name = string(record(action)?.action);
      if (name !== undefined) actions.add(name);
    }
  }
  return [...actions];
}

/** Tetragon compares action names without case. */
function hasAction(actions: string[], ...wanted: string[]): boolean {
  return actions.some((a) => wanted.includes(a.toLowerCase()));
}

function sigkillAction(actions: string[]): string {
  return actions.filter((a) => ['sigkill', 'signal'].includes(a.toLowerCase())).join('/');
}

function hex(v: unknown): string {
  return typeof v === 'number' && Number.isInteger(v) ? `0x${v.toString(16)}` : String(v);
}

function record(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function array(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function string(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
