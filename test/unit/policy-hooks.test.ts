import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { hookWarnings, hooksAndNeeds } from '../../policy/hooks.js';
import { readPolicies } from '../../policy/index.js';
import { parseDocuments } from '../../policy/load.js';
import type { Hook, Need } from '../../policy/model.js';
import { CRD_DIR, EXAMPLES, EXTRA } from '../support/shared.js';

const HEAD = 'apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: demo\nspec:\n';

function derive(spec: string): { hooks: Hook[]; needs: Need[] } {
  const [doc] = parseDocuments('p.yaml', HEAD + spec);
  return hooksAndNeeds(doc!);
}

async function examplePolicy(file: string) {
  const { policies } = await readPolicies([join(EXAMPLES, file)]);
  expect(policies).toHaveLength(1);
  return policies[0]!;
}

const features = (needs: Need[]) => needs.map((n) => n.feature);

describe('kprobe hooks', () => {
  it('resolves a syscall kprobe per arch, with the line of its call', async () => {
    const policy = await examplePolicy('sys_setuid.yaml');
    expect(policy.hooks).toEqual([
      expect.objectContaining({
        kind: 'kprobe',
        name: 'sys_setuid',
        id: 'kprobe:sys_setuid',
        syscall: true,
        kretprobe: false,
        symbols: { x86_64: '__x64_sys_setuid', arm64: '__arm64_sys_setuid' },
        source: { file: join(EXAMPLES, 'sys_setuid.yaml'), line: 8, column: 11 },
        path: 'spec.kprobes[0].call',
      }),
    ]);
    expect(policy.needs).toEqual([{ feature: 'kprobe', because: 'kprobes[0] sys_setuid', source: policy.hooks[0]!.source }]);
  });

  it('keeps the name of a kprobe that is not a syscall on both arches, and records return probes', async () => {
    const policy = await examplePolicy('tcp-accept.yaml');
    const skAlloc = policy.hooks.find((h) => h.name === 'sk_alloc')!;
    expect(skAlloc).toMatchObject({ syscall: false, kretprobe: true, symbols: { x86_64: 'sk_alloc', arm64: 'sk_alloc' } });
    expect(policy.hooks.find((h) => h.name === '__sk_free')!.actions).toEqual(['UntrackSock']);
  });

  it('expands call: "list:NAME" into one hook per value of a syscalls list, each at its value line', async () => {
    const policy = await examplePolicy('list-syscalls.yaml');
    expect(policy.hooks.map((h) => [h.name, h.list, h.syscall, h.source.line, h.path, h.symbols])).toEqual([
      ['sys_dup', 'syscalls', true, 10, 'spec.lists[0].values[0]', { x86_64: '__x64_sys_dup', arm64: '__arm64_sys_dup' }],
      // arm64 has dup3 only: no __arm64_sys_dup2.
      ['sys_dup2', 'syscalls', true, 11, 'spec.lists[0].values[1]', { x86_64: '__x64_sys_dup2' }],
    ]);
    expect(policy.hooks[1]!.missing?.arm64).toMatch(/arm64 has no dup2 syscall/);
    expect(policy.needs.map((n) => n.because)).toEqual(['kprobes[0] sys_dup (list:syscalls)', 'kprobes[0] sys_dup2 (list:syscalls)']);
  });

  it('records one hook for a generated list, which the agent fills on the node', async () => {
    const syscalls = await examplePolicy('list-syscalls-generated.yaml');
    expect(syscalls.hooks).toEqual([
      expect.objectContaining({ name: 'list:all-syscalls', list: 'all-syscalls', syscall: true, symbols: {}, generated: { type: 'generated_syscalls' } }),
    ]);
    const ftrace = await examplePolicy('list-generated-ftrace.yaml');
    expect(ftrace.hooks).toEqual([
      expect.objectContaining({ name: 'list:ksys', syscall: false, generated: { type: 'generated_ftrace', pattern: '^ksys_*' } }),
    ]);
    expect(features(ftrace.needs)).toEqual(['kprobe']);
  });

  it('expands a plain list as written; under syscall (the CRD default) a sys_ value lands on the wrapper through the prefix retry', () => {
    const { hooks } = derive('  lists:\n  - name: fns\n    values: [tcp_connect, sys_open]\n  kprobes:\n  - call: list:fns\n');
    expect(hooks.map((h) => [h.name, h.syscall, h.retryWithPrefix, h.symbols])).toEqual([
      ['tcp_connect', true, true, { x86_64: 'tcp_connect', arm64: 'tcp_connect' }],
      // arm64 has no open syscall.
      ['sys_open', true, true, { x86_64: '__x64_sys_open' }],
    ]);
  });

  it('looks a plain list value up as written under syscall: false, where no plain sys_ function exists', () => {
    const { hooks } = derive('  lists:\n  - name: fns\n    values: [tcp_connect, sys_dup]\n  kprobes:\n  - call: list:fns\n    syscall: false\n');
    expect(hooks.map((h) => [h.name, h.syscall, h.retryWithPrefix, h.symbols])).toEqual([
      ['tcp_connect', false, undefined, { x86_64: 'tcp_connect', arm64: 'tcp_connect' }],
      ['sys_dup', false, undefined, {}],
    ]);
    expect(hooks[1]!.missing?.x86_64).toContain('has only __x64_sys_dup');
  });

  it('reads the CRD\'s default of a kprobe\'s syscall field as true, the default hooks.ts applies', () => {
    // The agent applies the CRD's structural defaults when it reads a policy (Tetragon's crdutils).
    const crd = parse(readFileSync(join(CRD_DIR, 'cilium.io_tracingpolicies.yaml'), 'utf8')) as Record<string, any>;
    const kprobe = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.kprobes.items.properties;
    expect(kprobe.syscall).toMatchObject({ type: 'boolean', default: true });
    expect(kprobe.return).toMatchObject({ type: 'boolean', default: false });
  });

  it('warns where the CRD default decides syscall, and where a policy attaches nothing', () => {
    const [doc] = parseDocuments('p.yaml', HEAD + '  kprobes:\n  - call: sys_execve\n  - call: tcp_connect\n  - call: fd_install\n    syscall: false\n');
    const policy = { doc: doc!.value as Record<string, unknown>, hooks: hooksAndNeeds(doc!).hooks, source: { file: 'p.yaml', line: 1, column: 1 } };
    expect(hookWarnings(policy).map((w) => [w.code, w.path, w.line, w.message])).toEqual([
      ['syscall-defaulted', 'spec.kprobes[0].call', 7, expect.stringContaining('attaches __x64_sys_execve / __arm64_sys_execve; write `syscall: true`')],
      ['syscall-defaulted', 'spec.kprobes[1].call', 8, expect.stringContaining('write `syscall: false` for a kernel function')],
    ]);
    const [bare] = parseDocuments('p.yaml', HEAD + '  podSelector:\n    matchLabels:\n      app: web\n');
    expect(hookWarnings({ doc: bare!.value as Record<string, unknown>, hooks: [], source: { file: 'p.yaml', line: 1, column: 1 } }).map((w) => w.code)).toEqual(['no-hooks']);
  });

  it('takes syscall: true when a kprobe leaves it out, as the CRD defaults it and the agent applies the default', () => {
    const { hooks } = derive('  kprobes:\n  - call: sys_execve\n  - call: tcp_connect\n  - call: sys_execve\n    syscall: false\n');
    expect(hooks.map((h) => [h.syscall, h.symbols])).toEqual([
      [true, { x86_64: '__x64_sys_execve', arm64: '__arm64_sys_execve' }],
      // The agent looks __x64_tcp_connect up, which no kernel has.
      [true, {}],
      [false, {}],
    ]);
    expect(hooks[1]!.missing?.x86_64).toContain('__x64_tcp_connect, which is not a syscall entry point');
    expect(hooks[2]!.missing?.arm64).toContain('syscall: false makes the agent look sys_execve up as written');
  });

  it('says so when a list: call names a list that does not exist, or a generated list that has values', () => {
    const { hooks } = derive(
      '  lists:\n  - name: gen\n    type: generated_syscalls\n    values: [sys_dup]\n  kprobes:\n  - call: list:nope\n  - call: list:gen\n',
    );
    expect(hooks.map((h) => [h.name, h.missing?.x86_64])).toEqual([
      ['list:nope', 'list nope is not defined in spec.lists'],
      ['list:gen', 'Tetragon refuses generated list gen: it has values'],
    ]);
    expect(hooks[1]!.generated).toBeUndefined();
  });

  it('resolves the ABI forms of syscall list values as Tetragon does', () => {
    const { hooks } = derive(
      '  lists:\n  - name: abi\n    type: syscalls\n    values: [i386/sys_dup, arm32/sys_dup, "__x64_sys_dup", "__arm64_sys_dup", dup, "foo/sys_dup"]\n  kprobes:\n  - call: list:abi\n',
    );
    expect(hooks.map((h) => [h.name, h.symbols])).toEqual([
      ['i386/sys_dup', { x86_64: '__ia32_sys_dup' }],
      ['arm32/sys_dup', { arm64: '__arm64_sys_dup' }],
      ['__x64_sys_dup', { x86_64: '__x64_sys_dup' }],
      ['__arm64_sys_dup', { arm64: '__arm64_sys_dup' }],
      ['dup', {}],
      ['foo/sys_dup', {}],
    ]);
    expect(hooks[4]!.missing?.x86_64).toMatch(/syscall list values are sys_NAME/);
    expect(hooks[5]!.missing?.arm64).toMatch(/unknown ABI foo/);
  });

  it('collects the actions of all selectors and derives override and sigkill needs from them', async () => {
    const policy = await examplePolicy('hardlink-override.yaml');
    const hook = policy.hooks[0]!;
    expect(hook).toMatchObject({ name: 'sys_linkat', syscall: true, actions: ['Override'] });
    expect(policy.needs).toEqual([
      expect.objectContaining({ feature: 'kprobe' }),
      expect.objectContaining({ feature: 'override', via: 'override-return', because: expect.stringContaining('bpf_override_return') }),
    ]);
    const { needs } = derive('  kprobes:\n  - call: sys_kill\n    syscall: true\n    selectors:\n    - matchActions:\n      - action: Post\n    - matchActions:\n      - action: Signal\n        argSig: 9\n');
    expect(needs.map((n) => [n.feature, n.because])).toEqual([
      ['kprobe', 'kprobes[0] sys_kill'],
      ['sigkill', 'kprobes[0] sys_kill: Signal action'],
    ]);
  });

  it('needs fmod_ret, and so trampolines, to override a security_ function, and bpf_override_return as Tetragon checks it first', async () => {
    // Measured with Tetragon v1.5.0 on Debian 6.12: "error override action not supported,
    // bpf_override_return helper not available" for this policy, where fmod_ret works.
    const policy = await examplePolicy('override-security.yaml');
    expect(policy.needs.map((n) => [n.feature, n.via])).toEqual([
      ['kprobe', undefined],
      ['override', 'override-return'],
      ['override', 'fmod-ret'],
      ['trampoline', undefined],
    ]);
  });

  it('takes enforcer calls as hooks that need override and the signal helper', async () => {
    const policy = await examplePolicy('killer.yaml');
    const enforcers = policy.hooks.filter((h) => h.enforcer);
    expect(enforcers.map((h) => [h.name, h.symbols])).toEqual([
      ['sys_dup', { x86_64: '__x64_sys_dup', arm64: '__arm64_sys_dup' }],
      ['sys_dup2', { x86_64: '__x64_sys_dup2' }],
      ['__ia32_sys_dup', { x86_64: '__ia32_sys_dup' }],
    ]);
    expect(new Set(features(policy.needs))).toEqual(new Set(['kprobe', 'override', 'sigkill', 'tracepoint']));
    expect(policy.hooks.find((h) => h.kind === 'tracepoint')!.actions).toEqual(['NotifyEnforcer']);
  });
});

describe('other hooks', () => {
  it('reads tracepoints, and raw tracepoints when raw: true', async () => {
    expect((await examplePolicy('raw_syscalls.yaml')).hooks.map((h) => [h.id, h.source.line])).toEqual([['tracepoint:raw_syscalls/sys_enter', 7]]);
    const raw = await examplePolicy('rawtp.yaml');
    expect(raw.hooks.map((h) => h.id)).toEqual(['rawtp:sched/sched_process_exec']);
    expect(features(raw.needs)).toEqual(['raw-tracepoint']);
  });

  it('gives an LSM hook the needs of an active BPF LSM and working trampolines', async () => {
    const policy = await examplePolicy('lsm_file_open.yaml');
    expect(policy.hooks).toEqual([expect.objectContaining({ id: 'lsm:file_open', symbols: {}, source: expect.objectContaining({ line: 7 }) })]);
    expect(policy.needs.map((n) => [n.feature, n.because])).toEqual([
      ['bpf-lsm', 'lsmhooks[0] file_open'],
      ['trampoline', 'lsmhooks[0] file_open'],
    ]);
  });

  it('names uprobes binary:symbol, one per symbol, and by offset or address when given so', async () => {
    const policy = await examplePolicy('uprobe.yaml');
    expect(policy.hooks.map((h) => [h.id, h.source.line])).toEqual([
      ['uprobe:/bin/bash:readline', 9],
      ['uprobe:/bin/bash:main', 10],
    ]);
    expect(features(policy.needs)).toEqual(['uprobe', 'uprobe']);
    const { hooks } = derive('  uprobes:\n  - path: /bin/true\n    offsets: [4096]\n  - path: /bin/false\n    addrs: [255]\n');
    expect(hooks.map((h) => h.name)).toEqual(['/bin/true:+0x1000', '/bin/false:@0xff']);
  });

  it('names usdts binary:provider:name', async () => {
    const policy = await examplePolicy('usdt-set.yaml');
    expect(policy.hooks.map((h) => [h.id, h.actions])).toEqual([['usdt:/home/jolsa/tetragon/contrib/tester-progs/usdt-override:tetragon:test_4B', ['Set']]]);
    expect(features(policy.needs)).toEqual(['usdt']);
  });
});

describe('on the whole corpus', () => {
  it('derives at least one hook and one need for every policy', async () => {
    const { policies } = await readPolicies([EXAMPLES, EXTRA]);
    expect(policies.length).toBe(71 + 18);
    const hookless = policies.filter((p) => p.hooks.length === 0 || p.needs.length === 0).map((p) => p.source.file);
    expect(hookless).toEqual([]);
    // Every need points at a line of its policy's file.
    for (const p of policies) for (const n of p.needs) expect(n.source.file).toBe(p.source.file);
  });

  it('does not throw on a policy whose fields have the wrong types', () => {
    const { hooks, needs } = derive('  kprobes: {call: x}\n  tracepoints:\n  - subsystem: 1\n  lsmhooks: [null, {hook: 5}]\n  uprobes: [{path: /bin/x, symbols: "nope"}]\n');
    expect([hooks, needs]).toEqual([[], []]);
  });
});

describe('the loader sensor', () => {
  it('turns loader: true into the kprobe Tetragon attaches for it', async () => {
    const policy = await examplePolicy('loader.yaml');
    expect(policy.hooks).toEqual([
      expect.objectContaining({ id: 'kprobe:perf_event_mmap_output', symbols: { x86_64: 'perf_event_mmap_output', arm64: 'perf_event_mmap_output' }, path: 'spec.loader', source: expect.objectContaining({ line: 6 }) }),
    ]);
    expect(features(policy.needs)).toEqual(['kprobe']);
  });
});
