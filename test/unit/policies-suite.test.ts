import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import type { Policy } from '../../policy/model.js';
import { encodeRecord, parseConsole } from '../../runners/qemu/protocol.js';
import { CoverageTracker, parseRegistered } from '../../suites/policies/coverage.js';
import { planTargets, targetFiles, type Target } from '../../suites/policies/targets.js';
import { judgePolicy, type FeatureState, type Measurements } from '../../suites/policies/verdict.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { Trigger } from '../../suites/triggers/model.js';
import { CRD_DIR, EXAMPLES, EXTRA } from '../support/shared.js';

let policies: Policy[];
let triggers: Trigger[];
const byName = (name: string) => {
  const p = policies.find((x) => x.name === name);
  if (!p) throw new Error(`no policy ${name}`);
  return p;
};
const byFile = (file: string) => policies.find((p) => p.source.file.endsWith(file))!;

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

  it('counts LSM hooks at the BPF LSM stub and leaves user-space probes out of the guest', () => {
    const lsm = byName('lsm-file-open');
    const plan = planTargets([lsm], [], 'x86_64');
    expect(plan.forHook.get(lsm.hooks[0]!)).toMatchObject({ kind: 'kprobe', what: 'bpf_lsm_file_open' });
    const uprobe = byFile('uprobe.yaml');
    const why = planTargets([uprobe], [], 'x86_64').forHook.get(uprobe.hooks[0]!);
    expect(why).toHaveProperty('why');
  });

  it('registers a kernel function once however many policies and triggers name it', () => {
    const plan = planTargets(policies, triggers, 'x86_64');
    const whats = plan.targets.map((t) => `${t.kind}:${t.what}`);
    expect(new Set(whats).size).toBe(whats.length);
    expect(whats.filter((w) => w === 'kprobe:fd_install')).toHaveLength(1);
    const files = targetFiles(plan);
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

describe('hooks the policy lets the agent skip', () => {
  it('does not fail a policy on a missing call it marks ignore.callNotFound', () => {
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
  });
});
