import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import type { Policy } from '../../policy/model.js';
import { encodeRecord, parseConsole } from '../../runners/qemu/protocol.js';
import { CoverageTracker, parseCounters, parseRegistered } from '../../suites/policies/coverage.js';
import { parseResolved } from '../../suites/policies/registration.js';
import { planTargets, targetFiles, type Target } from '../../suites/policies/targets.js';
import { judgePolicy, type FeatureState, type Measurements } from '../../suites/policies/verdict.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { Trigger } from '../../suites/triggers/model.js';
import { CRD_DIR, EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

/** Policies written for the kernel lane's own cases (test/fixtures/policies/kernel-lane). */
const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'kernel-lane');

let policies: Policy[];
let triggers: Trigger[];
const byName = (name: string) => {
  const p = policies.find((x) => x.name === name);
  if (!p) throw new Error(`no policy ${name}`);
  return p;
};
const byFile = (file: string) => policies.find((p) => p.source.file.endsWith(file))!;
const lanePolicies = (await readPolicies([join(PROJECT_ROOT, 'test', 'fixtures', 'policies', 'lane-fidelity')])).policies;

beforeAll(async () => {
  const read = await readPolicies([EXAMPLES, join(EXTRA, 'docs')], { schema: CRD_DIR });
  policies = read.policies;
  triggers = await loadTriggerCatalogue();
});

describe('planning the guest probes', () => {
  it('resolves syscall kprobes to the entry point of each arch, as the agent would', () => {
    const setuid = byFile('sys_setuid.yaml');
    const x86 = planTargets([setuid], [], 'x86_64');
    const arm = planTargets([setuid], [], 'arm64');
    const hook = setuid.hooks[0]!;
    expect((x86.forHook.get(hook) as Target).what).toMatch(/^__x64_sys_setuid$/);
    expect((arm.forHook.get(hook) as Target).what).toMatch(/^__arm64_sys_setuid$/);
  });

  it('keeps a hard-coded __x64_sys_ symbol as written on arm64, so the guest shows it missing', () => {
    const nsenter = policies.find((p) => p.source.file.endsWith('02_nsenter.yaml'));
    const x64 = nsenter?.hooks.find((h) => h.name.startsWith('__x64_sys_'));
    if (!nsenter || !x64) throw new Error('the book nsenter policy has an __x64_sys_ call');
    const plan = planTargets([nsenter], [], 'arm64');
    expect((plan.forHook.get(x64) as Target).what).toBe(x64.name);
  });

  it('counts LSM hooks at the BPF LSM stub', () => {
    const lsm = byName('lsm-file-open');
    const plan = planTargets([lsm], [], 'x86_64');
    expect(plan.forHook.get(lsm.hooks[0]!)).toMatchObject({ kind: 'kprobe', what: 'bpf_lsm_file_open' });
  });

  it('plans uprobes and USDTs by binary and symbol or probe, for the guest to place by file offset', () => {
    const uprobe = byFile('tetragon-examples/uprobe.yaml');
    const host = byFile('uprobe-host.yaml');
    const usdt = byFile('tetragon-examples/usdt-set.yaml');
    const plan = planTargets([uprobe, host, usdt], [], 'arm64');
    expect(uprobe.hooks.map((h) => plan.forHook.get(h))).toMatchObject([
      { kind: 'uprobe', what: '/bin/bash:readline' },
      { kind: 'uprobe', what: '/bin/bash:main' },
    ]);
    const files = targetFiles(plan, 'arm64');
    expect(files.uprobes.trim().split('\n')).toEqual([
      'b0 u /bin/bash readline',
      'b1 u /bin/bash main',
      'b2 u /procRoot/1/root/usr/bin/bash _start',
      'b3 n /home/jolsa/tetragon/contrib/tester-progs/usdt-override tetragon test_4B',
    ]);
    expect(files.kprobes).toBe('');
  });

  it('plans a generated list as one target the guest expands, with the arch\'s syscall wrappers for generated_syscalls', () => {
    const syscalls = byFile('list-syscalls-generated.yaml');
    const ftrace = byFile('list-generated-ftrace.yaml');
    const plan = planTargets([syscalls, ftrace], [], 'arm64');
    expect(plan.forHook.get(syscalls.hooks[0]!)).toMatchObject({ kind: 'list', what: 'generated_syscalls', list: { type: 'generated_syscalls', ret: false } });
    expect(plan.forHook.get(ftrace.hooks[0]!)).toMatchObject({ kind: 'list', what: 'generated_ftrace:^ksys_*' });
    const files = targetFiles(plan, 'arm64');
    expect(files.lists).toBe('b0 p generated_syscalls -\nb1 p generated_ftrace ^ksys_*\n');
    const wrappers = files.syscalls.trim().split('\n');
    expect(wrappers).toContain('__arm64_sys_openat');
    expect(wrappers).not.toContain('__arm64_sys_open'); // arm64's table has no open
    expect(wrappers.every((w) => w.startsWith('__arm64_sys_'))).toBe(true);
    expect(targetFiles(planTargets([ftrace], [], 'arm64'), 'arm64').syscalls).toBe('');
  });

  it('gives a plain list value under syscall: true the prefixed name to fall back to, as the agent\'s BPF library does', async () => {
    const { policies: [p] } = await readPolicies([join(FIXTURES, 'sys-list-without-prefix.yaml')]);
    const plan = planTargets([p!], [], 'x86_64');
    expect(p!.hooks.map((h) => plan.forHook.get(h))).toMatchObject([
      { kind: 'kprobe', what: 'sys_getcwd', fallback: '__x64_sys_getcwd' },
      { kind: 'kprobe', what: 'sys_openat', fallback: '__x64_sys_openat' },
    ]);
    expect(targetFiles(plan, 'x86_64').kprobes).toBe('b0 p sys_getcwd __x64_sys_getcwd\nb1 p sys_openat __x64_sys_openat\n');
    // A call without `syscall` is a syscall (the CRD default): no fallback, the wrapper at once.
    const { policies: [q] } = await readPolicies([join(FIXTURES, 'sys-execve-without-syscall.yaml')]);
    expect(planTargets([q!], [], 'x86_64').targets).toEqual([{ name: 'b0', kind: 'kprobe', what: '__x64_sys_execve' }]);
  });

  it('asks for the loader\'s mmap events only where its hook is a target, from a policy or a trigger\'s hint', () => {
    const loader = byFile('tetragon-examples/loader.yaml');
    expect(planTargets([loader], [], 'x86_64').mmapEvents).toBe(true);
    expect(planTargets([byName('lsm-file-open')], [], 'x86_64').mmapEvents).toBe(false);
    const hijack = triggers.filter((t) => t.id === 't1574-006-dynamic-linker-hijacking');
    expect(planTargets([], hijack, 'x86_64').mmapEvents).toBe(true);
  });

  it('registers a kernel function once however many policies and triggers name it', () => {
    const plan = planTargets(policies, triggers, 'x86_64');
    const whats = plan.targets.map((t) => `${t.kind}:${t.what}`);
    expect(new Set(whats).size).toBe(whats.length);
    expect(whats.filter((w) => w === 'kprobe:fd_install')).toHaveLength(1);
    const files = targetFiles(plan, 'x86_64');
    expect(files.kprobes).toMatch(/^b\d+ p fd_install$/m);
    expect(files.tracepoints).toMatch(/^b\d+ raw_syscalls\/sys_enter$/m);
  });
});

describe('measured coverage from the guest counters', () => {
  it('gives each trigger the hits above the loudest null run, and ignores the cleanup reads', () => {
    const console = [
      encodeRecord(1, 'counters', 'phase=base up=1.0', 'b0 3\nb1 1'),
      encodeRecord(2, 'counters', 'phase=after trigger=null-1 rc=0 up=1.2', 'b0 2'),
      encodeRecord(3, 'counters', 'phase=after trigger=null-2 rc=0 up=1.4', 'b0 3\nb1 1'),
      // A failed trigger's output is a part of its counters record, sent just before it.
      encodeRecord(4, 'trigger-output', 'of=counters trigger=t1059-004-unix-shell rc=2', 'sh: nc: not found'),
      encodeRecord(5, 'counters', 'phase=after trigger=t1059-004-unix-shell rc=2 up=1.9', 'b0 10\nb1 1\nb2 4'),
      encodeRecord(6, 'counters', 'phase=base up=2.0', 'b3 9'),
    ].join('');
    const tracker = new CoverageTracker();
    for (const r of parseConsole(console).records.filter((r) => r.type === 'counters')) tracker.onCounters(r);
    expect(tracker.runs.map((r) => r.trigger)).toEqual(['null-1', 'null-2', 't1059-004-unix-shell']);
    expect(tracker.noise()).toEqual(new Map([['b0', 3], ['b1', 1]]));
    expect(tracker.firing().get('t1059-004-unix-shell')).toEqual(new Map([['b0', 7], ['b2', 4]]));
    expect(tracker.runs.map((r) => [r.exitCode, r.output])).toEqual([[0, ''], [0, ''], [2, 'sh: nc: not found']]);
  });

  it('reads the kernel\'s refusals of probes it could not register', () => {
    expect(parseRegistered('b4 No such file or directory\nb9 no such event\n')).toEqual(
      new Map([['b4', 'No such file or directory'], ['b9', 'no such event']]),
    );
  });
});

describe('the verdict of a policy on a cell', () => {
  const works: FeatureState = { lsmActive: true, trampolines: true, overrideReturn: false, fmodRet: true };
  function measure(ps: Policy[], opts: { refused?: string[]; fired?: Record<string, string[]>; hinted?: Record<string, string[]>; features?: Partial<FeatureState> } = {}): Measurements {
    const plan = planTargets(ps, [], 'x86_64');
    const nameOf = (what: string) => plan.targets.find((t) => t.what === what)!.name;
    return {
      plan,
      refused: new Map((opts.refused ?? []).map((w) => [nameOf(w), 'No such file or directory'])),
      firing: new Map(Object.entries(opts.fired ?? {}).map(([t, whats]) => [t, new Map(whats.map((w) => [nameOf(w), 3]))])),
      hinted: new Map(Object.entries(opts.hinted ?? {}).map(([t, whats]) => [t, new Set(whats.map(nameOf))])),
      features: { ...works, ...opts.features },
    };
  }

  it('passes a policy only when one of its hooks was seen to fire, naming the trigger', () => {
    const p = byName('lsm-file-open');
    const v = judgePolicy(p, p.name, measure([p], { fired: { 't1003-008-etc-passwd-and-shadow': ['bpf_lsm_file_open'] } }));
    expect(v.status).toBe('pass');
    expect(JSON.stringify(v.evidence)).toContain('t1003-008-etc-passwd-and-shadow');
  });

  it('calls a policy nothing reached untested, a skip and never a pass', () => {
    const p = byName('lsm-file-open');
    const v = judgePolicy(p, p.name, measure([p]));
    expect(v).toMatchObject({ status: 'skip', reason: 'untested' });
  });

  it('fails with not-fired when a trigger meant for the hook ran and it stayed silent', () => {
    const p = byName('lsm-file-open');
    const v = judgePolicy(p, p.name, measure([p], { hinted: { 't1003-008-etc-passwd-and-shadow': ['bpf_lsm_file_open'] } }));
    expect(v).toMatchObject({ status: 'fail', reason: 'not-fired' });
  });

  it('reports lsm-inactive before anything else an LSM policy meets when bpf is not an active LSM', () => {
    const p = byName('lsm-file-open');
    const v = judgePolicy(p, p.name, measure([p], { features: { lsmActive: false, trampolines: false } }));
    expect(v).toMatchObject({ status: 'fail', reason: 'lsm-inactive' });
    expect(v.source?.line).toBe(p.hooks[0]!.source.line);
  });

  it('reports trampoline-unsupported for LSM policies where fentry cannot attach', () => {
    const p = byName('lsm-file-open');
    expect(judgePolicy(p, p.name, measure([p], { features: { trampolines: false } }))).toMatchObject({ reason: 'trampoline-unsupported' });
  });

  it('reports symbol-missing at the line of the hook the kernel refused', () => {
    const p = byFile('dev_queue_xmit.yaml');
    const v = judgePolicy(p, p.name, measure([p], { refused: ['dev_queue_xmit'] }));
    expect(v).toMatchObject({ status: 'fail', reason: 'symbol-missing' });
    expect(v.source).toEqual(p.hooks[0]!.source);
  });

  it('reports override-unsupported for an Override on a syscall without error injection', () => {
    const p = byFile('hardlink-override.yaml');
    const v = judgePolicy(p, p.name, measure([p], { fired: { t: [p.hooks.length ? '__x64_sys_linkat' : ''] } }));
    expect(v).toMatchObject({ status: 'fail', reason: 'override-unsupported' });
  });
});

/** The `resolved` record of a real policies-suite run on x86_64-6.12 (the 9 corpus policies and the kernel-lane fixtures). */
const RESOLVED_X86_612 = [
  'b12 symbol __x64_sys_getcwd sys_getcwd: Invalid argument',
  'b3 binary-missing /lib64/libc.so.6 /lib/x86_64-linux-gnu/libc.so.6 ',
  'b14 binary-missing /usr/lib/bpfgate-not-installed/app ',
  'b4 uprobe /usr/bin/bash:0x31750',
  'b5 uprobe /usr/bin/bash:0xc6c20',
  'b6 uprobe /usr/bin/bash:0x2feb0',
  'b7 uprobe /home/jolsa/tetragon/contrib/tester-progs/usdt-override:0x2ba(0x2c4)',
  'b8 uprobe /home/jolsa/tetragon/contrib/tester-progs/usdt:0x2a0',
  'b13 symbol-missing /usr/bin/bash',
  'b0 list 27 27 22.46 23.47 ',
  'b1 list 328 328 23.60 26.53 ',
  'b9 list-too-large 42520 1000',
  'mmap-events opened 1 of 1 cpus',
  'timing start=15.80 kprobes=16.00 uprobes=16.83 lists=26.88 enable=34.11 ready=34.63',
].join('\n');

describe.skipIf(spawnSync('busybox', ['--help'], { stdio: 'ignore' }).status !== 0)('the guest\'s counter reader (busybox awk, as in the guest)', () => {
  it('sums a generated list\'s functions under its name and reads uprobe hits from the uprobe profile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfgate-counters-'));
    try {
      // The kernel's formats: kprobe_profile "  %-44s %15lu %15lu", uprobe_profile "  %s %-44s %15lu".
      writeFileSync(join(dir, 'prev'), 'b0 10\nb3 1\n');
      writeFileSync(join(dir, 'tracepoints'), '');
      writeFileSync(join(dir, 'kprobe_profile'), ['b0_0', 'b0_1', 'b0_17', 'b2'].map((n, i) => `  ${n.padEnd(44)} ${String(5 + i).padStart(15)} ${'0'.padStart(15)}`).join('\n') + '\n');
      writeFileSync(join(dir, 'uprobe_profile'), `  /usr/bin/bash ${'b3'.padEnd(44)} ${'7'.padStart(15)}\n  /usr/bin/bash ${'b4'.padEnd(44)} ${'0'.padStart(15)}\n`);
      const awk = join(PROJECT_ROOT, 'suites', 'policies', 'guest', 'counters.awk');
      const r = spawnSync('busybox', ['awk', '-v', `PREV=${join(dir, 'prev')}`, '-v', `TPS=${join(dir, 'tracepoints')}`, '-f', awk,
        join(dir, 'prev'), join(dir, 'tracepoints'), join(dir, 'kprobe_profile'), join(dir, 'uprobe_profile')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      // b0 = 5 + 6 + 7 = 18, 8 more than before; b2 new; b3 6 more; b4 never moved.
      expect(parseCounters(r.stdout)).toEqual(new Map([['b0', 8], ['b2', 8], ['b3', 6]]));
      expect(readFileSync(join(dir, 'prev'), 'utf8').trim().split('\n').sort()).toEqual(['b0 18', 'b2 8', 'b3 7', 'b4 0']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(spawnSync('perl', ['-v'], { stdio: 'ignore' }).status !== 0)('the loader\'s mmap-event helper', () => {
  it('compiles with perl-base alone: no modules, as the guest has none (needs perl on PATH)', () => {
    const file = join(PROJECT_ROOT, 'suites', 'policies', 'guest', 'mmap-events.pl');
    expect(readFileSync(file, 'utf8')).not.toMatch(/^\s*(use|require|BEGIN)\b/m);
    const r = spawnSync('perl', ['-c', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe('how the guest resolved what it registered', () => {
  it('reads fallback symbols, uprobe offsets, missing binaries and symbols, list expansions and the mmap events', () => {
    const r = parseResolved(RESOLVED_X86_612);
    expect(r.fallback.get('b12')).toEqual({ symbol: '__x64_sys_getcwd', refused: 'sys_getcwd: Invalid argument' });
    expect(r.uprobes.get('b7')).toBe('/home/jolsa/tetragon/contrib/tester-progs/usdt-override:0x2ba(0x2c4)');
    expect(r.binaryMissing.get('b3')).toEqual({ path: '/lib64/libc.so.6', sameName: ['/lib/x86_64-linux-gnu/libc.so.6'] });
    expect(r.binaryMissing.get('b14')).toEqual({ path: '/usr/lib/bpfgate-not-installed/app', sameName: [] });
    expect(r.symbolMissing.get('b13')).toEqual({ path: '/usr/bin/bash', what: 'symbol' });
    expect(r.lists.get('b1')).toEqual({ expanded: 328, registered: 328, clones: 0, seconds: 2.93 });
    expect(r.tooLarge.get('b9')).toEqual({ expanded: 42520, cap: 1000 });
    expect(r.mmapEvents).toBe('opened 1 of 1 cpus');
  });
});

describe('verdicts on hooks beyond kernel functions', () => {
  const works: FeatureState = { lsmActive: true, trampolines: true, overrideReturn: false, fmodRet: true };
  const fixture = async (file: string) => (await readPolicies([join(FIXTURES, file)])).policies[0]!;
  function judge(p: Policy, resolved: string, opts: { fired?: string[]; refused?: Record<string, string> } = {}) {
    const plan = planTargets([p], [], 'x86_64');
    const firing = new Map([['t1059-004-interactive-bash', new Map((opts.fired ?? []).map((n) => [n, 4]))]]);
    return judgePolicy(p, p.name, { plan, refused: new Map(Object.entries(opts.refused ?? {})), resolution: parseResolved(resolved), firing, hinted: new Map(), features: works });
  }

  it('fails a policy with no hook at all with no-hooks, not as a gap in the triggers', async () => {
    const p = await fixture('pod-selector-only.yaml');
    expect(p.hooks).toEqual([]);
    const v = judge(p, '');
    expect(v).toMatchObject({ status: 'fail', reason: 'no-hooks', evidence: { spec: ['podSelector'] } });
  });

  it('fails a uprobe on a binary the cell lacks with binary-missing, naming where Debian keeps it', () => {
    const p = byFile('uprobe-binaries.yaml');
    const v = judge(p, 'b0 binary-missing /lib64/libc.so.6 /lib/x86_64-linux-gnu/libc.so.6');
    expect(v).toMatchObject({ status: 'fail', reason: 'binary-missing', evidence: { missing: '/lib64/libc.so.6', sameNameHere: ['/lib/x86_64-linux-gnu/libc.so.6'] } });
    expect(String(v.evidence.debianKeepsIt)).toContain('/lib/<triplet>/');
    expect(v.source).toEqual(p.hooks[0]!.source);
  });

  it('says how it read /procRoot when a binary under it is missing, and passes it when its hook fired', () => {
    const p = byFile('uprobe-host.yaml');
    expect(String(judge(p, 'b0 binary-missing /procRoot/1/root/usr/bin/bash').evidence.procRoot)).toContain("the agent's procfs");
    const v = judge(p, 'b0 uprobe /usr/bin/bash:0x31750', { fired: ['b0'] });
    expect(v.status).toBe('pass');
    expect(JSON.stringify(v.evidence)).toContain('/usr/bin/bash:0x31750');
    expect(JSON.stringify(v.evidence)).toContain("this guest's /proc");
  });

  it('fails a uprobe on a symbol its binary lacks with symbol-missing, and one the kernel refused with attach-failed', async () => {
    const p = await fixture('uprobe-missing-symbol.yaml');
    expect(judge(p, 'b0 symbol-missing /usr/bin/bash')).toMatchObject({ status: 'fail', reason: 'symbol-missing', evidence: { missing: 'uprobe:/usr/bin/bash:bpfgate_no_such_function' } });
    expect(judge(p, '', { refused: { b0: '/usr/bin/bash:0x3(0x0): Invalid argument' } })).toMatchObject({ status: 'fail', reason: 'attach-failed' });
  });

  it('fails a generated list beyond the cap with list-too-large, and passes a registered one with its expansion as evidence', async () => {
    const big = await fixture('ftrace-list-everything.yaml');
    expect(judge(big, 'b0 list-too-large 42520 1000')).toMatchObject({ status: 'fail', reason: 'list-too-large', evidence: { expanded: 42520, cap: 1000 } });
    const ksys = byFile('list-generated-ftrace.yaml');
    const v = judge(ksys, 'b0 list 27 27 22.46 23.47', { fired: ['b0'] });
    expect(v.status).toBe('pass');
    expect(JSON.stringify(v.evidence)).toContain('"expanded":27');
    // The agent attaches all of a list or fails the policy: one refused function is the list's symbol-missing.
    const refused = judge(ksys, 'b0 list 27 26 22.46 23.47 0', { fired: ['b0'], refused: { b0: '1 of 27 functions refused (ksys_foo): 1 Invalid argument' } });
    expect(refused).toMatchObject({ status: 'fail', reason: 'symbol-missing', evidence: { kernelSays: expect.stringContaining('1 of 27 functions refused') } });
    // So is a compiler clone, which the agent's BTF check cannot find ("syscall \"ksys_msgctl.constprop.0\" ... not found", v1.5.0).
    const clones = judge(ksys, 'b0 list 27 24 22.46 23.47 3', { fired: ['b0'], refused: { b0: '3 of 27 functions are compiler clones BTF does not name (ksys_msgctl.constprop.0,ksys_semctl.constprop.0,ksys_shmctl.constprop.0)' } });
    expect(clones).toMatchObject({ status: 'fail', reason: 'symbol-missing' });
  });

  it('names the symbol a kprobe attached under after the kernel refused its name as written', async () => {
    const p = await fixture('sys-list-without-prefix.yaml');
    const v = judge(p, 'b1 symbol __x64_sys_openat sys_openat: Invalid argument', { fired: ['b1'] });
    expect(v.status).toBe('pass');
    expect(JSON.stringify(v.evidence)).toContain('__x64_sys_openat (sys_openat: Invalid argument');
  });

  it('fails the loader with attach-failed when its mmap events could not be opened, and passes it with them open', () => {
    const p = byFile('tetragon-examples/loader.yaml');
    expect(judge(p, 'mmap-events error on cpu 0: Permission denied', { fired: ['b0'] })).toMatchObject({ status: 'fail', reason: 'attach-failed', evidence: { guestSays: 'error on cpu 0: Permission denied' } });
    const v = judge(p, 'mmap-events opened 2 of 2 cpus', { fired: ['b0'] });
    expect(v).toMatchObject({ status: 'pass', evidence: { mmapEvents: expect.stringContaining('opened 2 of 2 cpus') } });
  });
});

describe('hooks the policy lets the agent skip', () => {
  it('does not fail a policy on a missing call it marks ignore.callNotFound, unless every call is missing', () => {
    const p = byFile('tetragon-examples/bpf.yaml');
    const plan = planTargets([p], [], 'x86_64');
    const nameOf = (what: string) => plan.targets.find((t) => t.what === what)!.name;
    const v = judgePolicy(p, p.name, {
      plan,
      refused: new Map([[nameOf('security_bpf_map_alloc'), 'No such file or directory']]),
      firing: new Map([['t1014-rootkit', new Map([[nameOf('bpf_check'), 7]])]]),
      hinted: new Map(),
      features: { lsmActive: true, trampolines: true, overrideReturn: false, fmodRet: true },
    });
    expect(v.status).toBe('pass');
    expect(JSON.stringify(v.evidence)).toContain('security_bpf_map_alloc');

    // Every call missing, each skipped as asked: the agent attaches nothing (it lists the policy
    // enabled with no sensor, and the Tetragon lane calls that symbol-missing): so does this lane.
    const none = lanePolicies.find((q) => q.name === 'fidelity-calls-not-found')!;
    const nonePlan = planTargets([none], [], 'x86_64');
    const all = judgePolicy(none, none.name, {
      plan: nonePlan, refused: new Map([[nonePlan.targets[0]!.name, 'No such file or directory']]), firing: new Map(), hinted: new Map(),
      features: { lsmActive: true, trampolines: true, overrideReturn: false, fmodRet: true },
    });
    expect(all).toMatchObject({ status: 'fail', reason: 'symbol-missing' });
    expect(String(all.evidence.why)).toContain('attaches nothing');
  });
});
