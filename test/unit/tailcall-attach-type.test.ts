/**
 * The tail-call attach-type finding, judged on the guest records of a real
 * `bpfgate repro tailcall-attach-type` (test/fixtures/probe/README.md): the probe's
 * verdict per cell, the named reproduction, and the agent's refusal read from Tetragon
 * v1.5.0's own words.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckDraft } from '../../core/check.js';
import type { CellFacts } from '../../core/facts.js';
import type { CellContext } from '../../core/suite.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { parseConsole, type GuestRecord } from '../../runners/qemu/protocol.js';
import { attachFailureReason, readAttach, readFacts } from '../../suites/probe/evidence.js';
import { ProbeSession } from '../../suites/probe/index.js';
import { enforcesTailcallAttachType, findBug, type KernelBug, type ProbeObservations } from '../../suites/repro/bugs.js';
import { kernelVersion as upstreamVersion } from '../../core/facts.js';
import { refusedMixedTailCalls } from '../../suites/tetragon/load-state.js';
import { multiLinks } from '../../suites/tetragon/plan.js';
import { readPolicies } from '../../policy/index.js';
import { EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'probe');
const runFacts = (JSON.parse(readFileSync(join(FIXTURES, 'tailcall.run.json'), 'utf8')) as { cells: CellFacts[] }).cells;
const records = (cell: string): GuestRecord[] => parseConsole(readFileSync(join(FIXTURES, `tailcall-${cell}.serial.log`), 'latin1')).records;
const factsOf = (cell: string) => runFacts.find((f) => f.cell === cell)!;
const bug = findBug('tailcall-attach-type') as KernelBug;

function observations(cell: string): ProbeObservations {
  const seen: ProbeObservations = { ringbufs: new Map(), attaches: new Map() };
  for (const r of records(cell)) {
    if (r.type === 'facts') seen.facts = readFacts(r);
    if (r.type === 'attach') seen.attaches.set(readAttach(r).object, readAttach(r));
  }
  return seen;
}

/** The probe suite's checks of one boot, replayed from its console (`run`: which recorded run). */
async function probeChecks(cellId: string, run: 'tailcall' | 'multi' = 'tailcall'): Promise<CheckDraft[]> {
  const cell = (await loadDefaultMatrix()).cells.find((c) => c.id === cellId)!;
  const facts = (JSON.parse(readFileSync(join(FIXTURES, `${run}.run.json`), 'utf8')) as { cells: CellFacts[] }).cells.find((f) => f.cell === cellId)!;
  const ctx: CellContext = {
    cell, facts, config: new Map(Object.entries(facts.config)), policies: [], policyProblems: new Map(), fileProblems: [], subjects: new Map(),
  };
  const session = new ProbeSession(ctx);
  const console = parseConsole(readFileSync(join(FIXTURES, `${run}-${cellId}.serial.log`), 'latin1')).records;
  return console.flatMap((r) => session.onRecord(r));
}

describe('the probe: a kprobe.multi and a kprobe program in one tail-call map', () => {
  it('fails on x86_64 6.12 with the kernel\'s refusal: kprobe.multi works there and the mix does not load', async () => {
    const checks = await probeChecks('x86_64-6.12');
    expect(checks.find((c) => c.subject === 'kprobe-multi')).toMatchObject({ status: 'pass' });
    const mixed = checks.find((c) => c.subject === 'kprobe-multi-tailcall');
    expect(mixed).toMatchObject({ status: 'fail', reason: 'tailcall-attach-type' });
    expect(String(mixed!.evidence.error)).toContain("prog 'tail_target'");
    expect(String(mixed!.evidence.error)).toContain('Invalid argument');
  });

  it('is not applicable where kprobe.multi does not attach, and still records that the kernel refuses the mix', async () => {
    for (const cell of ['x86_64-6.1', 'arm64-16k-6.12']) {
      const checks = await probeChecks(cell);
      expect(checks.find((c) => c.subject === 'kprobe-multi')).toMatchObject({ status: 'fail', reason: 'kprobe-multi-unsupported' });
      expect(checks.find((c) => c.subject === 'kprobe-multi-tailcall')).toMatchObject({ status: 'skip', reason: null, evidence: { kernelRefusesMixedTailCalls: true } });
    }
  });

  it('finds the same refusal for uprobe.multi, which arm64 6.12 has (Tetragon v1.5.0\'s multi-uprobe sensor mixes the same way)', async () => {
    const checks = await probeChecks('arm64-16k-6.12', 'multi');
    const hits = checks.find((c) => c.subject === 'uprobe-multi');
    expect(hits).toMatchObject({ status: 'pass' });
    expect(Number(hits!.evidence.hits)).toBeGreaterThan(0);
    expect(checks.find((c) => c.subject === 'uprobe-multi-tailcall')).toMatchObject({ status: 'fail', reason: 'tailcall-attach-type' });
  });

  it('calls uprobe.multi unsupported on 6.1, which has no such link type (EINVAL at attach), and has nothing to mix there', async () => {
    const checks = await probeChecks('arm64-4k-6.1', 'multi');
    const multi = checks.find((c) => c.subject === 'uprobe-multi');
    expect(multi).toMatchObject({ status: 'fail', reason: 'uprobe-multi-unsupported' });
    expect(String(multi!.evidence.error)).toContain('failed to attach multi-uprobe: Invalid argument');
    expect(checks.find((c) => c.subject === 'uprobe-multi-tailcall')).toMatchObject({ status: 'skip', evidence: { kernelRefusesMixedTailCalls: true } });
  });

  it('tells the load refusal from an attach failure', () => {
    const mixed = observations('x86_64-6.12').attaches.get('tailcall')!;
    expect(attachFailureReason(mixed)).toBe('tailcall-attach-type');
    const multi = observations('arm64-16k-6.12').attaches.get('kmulti')!;
    expect(attachFailureReason(multi)).toBe('kprobe-multi-unsupported');
  });
});

describe('bpfgate repro tailcall-attach-type', () => {
  it('expects the bug where kprobe.multi exists on a kernel with the enforcement, and absent where kprobe.multi is absent', () => {
    const config = (cell: string) => new Map(Object.entries(factsOf(cell).config));
    expect(bug.expect(factsOf('x86_64-6.12'), config('x86_64-6.12'))).toBe('shows');
    expect(bug.expect(factsOf('x86_64-6.1'), config('x86_64-6.1'))).toBe('absent');
    expect(bug.expect(factsOf('arm64-16k-6.12'), config('arm64-16k-6.12'))).toBe('absent');
  });

  it('observes it on x86_64 6.12 and not on the cells without kprobe.multi', () => {
    expect(bug.observe(observations('x86_64-6.12')).shows).toBe(true);
    expect(bug.observe(observations('x86_64-6.1')).shows).toBe(false);
    expect(bug.observe(observations('arm64-16k-6.12')).shows).toBe(false);
    expect(bug.summary!(bug.observe(observations('x86_64-6.12')).evidence)).toMatch(/^kprobe\.multi attached, \d+ hits; kprobe sharing its tail-call map refused: .*Invalid argument/);
  });

  it('reads the upstream version from Debian\'s package version or release, and knows the 6.12 stable line that carries the fix', () => {
    expect(upstreamVersion('6.12.57-1')).toEqual([6, 12, 57]);
    expect(upstreamVersion('6.12.57+deb13-amd64')).toEqual([6, 12, 57]);
    const at = (version: string) => enforcesTailcallAttachType({ ...factsOf('x86_64-6.12'), kernel: { ...factsOf('x86_64-6.12').kernel, version } });
    expect(at('6.12.52-1')).toBe('absent');
    expect(at('6.12.53-1')).toBe('shows');
    expect(at('6.18.1-1')).toBe('shows');
    // Other lines got backports (bookworm's 6.1 refuses the mix too, measured): the version alone does not say.
    expect(at('6.6.100-1')).toBeUndefined();
  });

  it('the whole run: reproduced on x86_64-6.12, absent on the three other cells', () => {
    const results = readFileSync(join(FIXTURES, 'tailcall.results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { cell: string; subject: string; status: string; evidence: Record<string, unknown> });
    const repro = results.filter((r) => r.subject === 'tailcall-attach-type');
    expect(Object.fromEntries(repro.map((r) => [r.cell, [r.status, r.evidence.observed]]))).toEqual({
      'x86_64-6.12': ['pass', 'shows'], 'x86_64-6.1': ['pass', 'absent'], 'arm64-4k-6.1': ['pass', 'absent'], 'arm64-16k-6.12': ['pass', 'absent'],
    });
  });
});

describe('the agent\'s refusal, in its own words', () => {
  // tetra's answer to `tracingpolicy add` of a one-kprobe policy, Tetragon v1.5.0 on Debian 6.12.118 (no agent flags).
  const refused = 'Error: failed to add tracing policy: rpc error: code = Unknown desc = sensor generic_kprobe from collection connect failed to load: failed prog /usr/local/lib/tetragon/bpf/bpf_multi_kprobe_v612.o kern_version 396288 loadInstance: opening collection \'/usr/local/lib/tetragon/bpf/bpf_multi_kprobe_v612.o\' failed: program generic_kprobe_event: load program: invalid argument';

  it('is the multi-kprobe object refused with EINVAL at load', () => {
    expect(refusedMixedTailCalls(refused)).toBe(true);
    // The same words from the single-kprobe object are another failure.
    expect(refusedMixedTailCalls(refused.replaceAll('bpf_multi_kprobe_v612.o', 'bpf_generic_kprobe_v612.o'))).toBe(false);
    expect(refusedMixedTailCalls('sensor generic_kprobe failed: failed prog /usr/local/lib/tetragon/bpf/bpf_multi_kprobe_v612.o: attaching: operation not supported')).toBe(false);
  });
});

describe('which of a policy\'s hooks the agent attaches through a multi link', async () => {
  const { policies } = await readPolicies([
    join(EXAMPLES, 'tcp-connect.yaml'), join(EXAMPLES, 'uprobe.yaml'), join(EXAMPLES, 'loader.yaml'),
    join(EXTRA, 'examples', 'policylibrary', 'sshd.yaml'), join(EXAMPLES, 'lsm_file_open.yaml'),
  ]);
  const named = (name: string) => policies.find((p) => p.name === name)!;
  const cell = { kprobeMulti: true, uprobeMulti: true };

  it('kprobes and uprobes where the cell has the links, unless the policy\'s own options turn them off', () => {
    expect(multiLinks(named('connect'), cell)).toEqual({ kprobeMulti: true });
    expect(multiLinks(named('uprobe'), cell)).toEqual({ uprobeMulti: true });
    // sshd.yaml sets spec.options disable-kprobe-multi: "1".
    expect(multiLinks(named('accept'), cell)).toEqual({ kprobeMulti: false });
    expect(multiLinks(named('connect'), { kprobeMulti: false, uprobeMulti: true })).toEqual({ kprobeMulti: false });
  });

  it('never for the loader\'s kprobe (a sensor of its own) nor for LSM hooks', () => {
    expect(multiLinks(named('loader'), cell)).toEqual({});
    expect(multiLinks(named('lsm-file-open'), cell)).toEqual({});
  });
});
