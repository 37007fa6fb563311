import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateGate, loadBaseline, parseBaseline } from '../../core/baseline.js';
import type { CheckResult } from '../../core/check.js';
import { InputError } from '../../core/errors.js';
import { corpusPolicies, realisticResults } from '../support/realistic-results.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-baseline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POLICIES = corpusPolicies();
const RESULTS = realisticResults(POLICIES);
const failing = (rs: readonly CheckResult[]) => rs.filter((r) => r.status === 'fail' || r.status === 'error');
const ids = (rs: readonly CheckResult[]) => rs.map((r) => `${r.cell} ${r.subject} ${r.check} ${r.reason}`).sort();

function parseError(text: string): InputError {
  try {
    parseBaseline(text, 'baseline.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('the baseline was accepted');
}

describe('reading a baseline', () => {
  it('reads entries with globs, an optional check, a reason and where they are', async () => {
    const file = join(dir, 'baseline.yaml');
    writeFileSync(
      file,
      `# known failures of the corpus on the default matrix
- { cell: "arm64-*-6.1*", subject: "lsm-file-open", check: "hook:*", reason: trampoline-unsupported, note: "no DYNAMIC_FTRACE_WITH_DIRECT_CALLS on arm64 6.1" }
- cell: "arm64-*"
  subject: deny-nsenter
  reason: symbol-missing
`,
    );
    const entries = await loadBaseline(file);
    expect(entries).toEqual([
      { cell: 'arm64-*-6.1*', subject: 'lsm-file-open', check: 'hook:*', reason: 'trampoline-unsupported', note: 'no DYNAMIC_FTRACE_WITH_DIRECT_CALLS on arm64 6.1', where: { file, line: 2 } },
      { cell: 'arm64-*', subject: 'deny-nsenter', reason: 'symbol-missing', where: { file, line: 3 } },
    ]);
  });

  it('reads an empty file as an empty baseline', () => {
    expect(parseBaseline('# nothing is expected to fail\n', 'baseline.yaml')).toEqual([]);
  });

  it('refuses an unknown reason code at its position, listing the known ones', () => {
    const e = parseError('- { cell: "x86_64-*", subject: bpf, reason: symbol-absent }\n');
    expect(e.code).toBe('baseline-invalid');
    expect([e.line, e.column]).toEqual([1, 45]);
    expect(e.message).toContain('baseline.yaml:1:45: [0].reason: expected a known reason code (got "symbol-absent"); known: yaml-invalid, schema-invalid, symbol-missing');
  });

  it('refuses an entry without a reason and an unknown field, at their positions', () => {
    const missing = parseError('- cell: "x86_64-*"\n  subject: bpf\n');
    expect([missing.code, missing.line]).toEqual(['baseline-schema', 1]);
    expect(missing.message).toContain('[0]: missing required field "reason"');
    const unknown = parseError('- cell: "x86_64-*"\n  subject: bpf\n  reason: load-error\n  cells: "arm64-*"\n');
    expect([unknown.line, unknown.column]).toEqual([4, 3]);
    expect(unknown.message).toContain('[0].cells: unknown field "cells"; expected one of: cell, subject, check, reason, note');
  });

  it('refuses a baseline that is not a list', () => {
    const e = parseError('cell: "x86_64-*"\nsubject: bpf\nreason: load-error\n');
    expect(e.message).toContain('(document): expected a list (got a mapping)');
  });

  it('reports a missing baseline file', async () => {
    await expect(loadBaseline(join(dir, 'absent.yaml'))).rejects.toThrow(/cannot read the baseline/);
  });
});

describe('the gate', () => {
  it('finds failures in the realistic run to gate on', () => {
    // The fixtures must contain what the gate tests below rely on.
    expect(POLICIES.map((p) => p.name)).toEqual(expect.arrayContaining(['deny-nsenter', 'lsm-file-open', 'monitor-elastic-keystore-file']));
    expect(new Set(failing(RESULTS).map((r) => r.reason))).toEqual(
      new Set(['symbol-missing', 'trampoline-unsupported', 'lsm-inactive', 'ringbuf-pagesize', 'infra-guest-protocol']),
    );
  });

  it('fails on every failing check when there is no baseline', () => {
    const gate = evaluateGate(RESULTS, []);
    expect(gate.unexpected).toEqual(failing(RESULTS));
    expect([gate.expected, gate.fixed, gate.unusedEntries]).toEqual([[], [], []]);
  });

  it('expects what the baseline names and fails on the rest, an infra error included', () => {
    const baseline = parseBaseline(
      `- { cell: "arm64-*", subject: "*", check: "hook:kprobe:__x64_sys_*", reason: symbol-missing, note: x86-only syscall symbols }
- { cell: "arm64-4k-6.1*", subject: "lsm*", check: "hook:lsm:*", reason: trampoline-unsupported }
- { cell: "arm64-16k-*", subject: ringbuf, reason: ringbuf-pagesize }
`,
      'baseline.yaml',
    );
    const gate = evaluateGate(RESULTS, baseline);
    const expectedReasons = new Set(['symbol-missing', 'trampoline-unsupported', 'ringbuf-pagesize']);
    expect(ids(gate.expected)).toEqual(ids(failing(RESULTS).filter((r) => expectedReasons.has(r.reason ?? ''))));
    // Left over: LSM hooks on +nobpflsm cells (except arm64 6.1, where attach fails first) and the garbled guest line.
    expect(new Set(gate.unexpected.map((r) => r.reason))).toEqual(new Set(['lsm-inactive', 'infra-guest-protocol']));
    expect(gate.unexpected.filter((r) => r.reason === 'lsm-inactive').every((r) => r.cell.endsWith('+nobpflsm') && !r.cell.startsWith('arm64-4k-6.1+'))).toBe(true);
    expect(gate.unexpected.length + gate.expected.length).toBe(failing(RESULTS).length);
    expect([gate.fixed, gate.unusedEntries]).toEqual([[], []]);
  });

  it('treats a known failure that changed its reason as unexpected', () => {
    const baseline = parseBaseline('- { cell: "arm64-4k-6.1", subject: lsm-file-open, reason: lsm-inactive }\n', 'baseline.yaml');
    const gate = evaluateGate(RESULTS, baseline);
    const onCell = gate.unexpected.filter((r) => r.cell === 'arm64-4k-6.1' && r.subject === 'lsm-file-open');
    expect(onCell.map((r) => r.reason)).toEqual(['trampoline-unsupported']);
    expect(gate.unusedEntries).toEqual(baseline);
  });

  it('notes entries whose checks now all pass as fixed, and entries that match nothing as unused', () => {
    const baseline = parseBaseline(
      `- { cell: "x86_64-6.12", subject: lsm-file-open, reason: lsm-inactive, note: fixed by booting with bpf in lsm= }
- { cell: "*", subject: no-such-policy, reason: load-error }
`,
      'baseline.yaml',
    );
    const gate = evaluateGate(RESULTS, baseline);
    expect(gate.fixed.map((e) => e.note)).toEqual(['fixed by booting with bpf in lsm=']);
    expect(gate.unusedEntries.map((e) => e.subject)).toEqual(['no-such-policy']);
    expect(gate.expected).toEqual([]);
  });

  it('leaves only infrastructure errors unexpected when the baseline covers every policy failure', () => {
    const baseline = parseBaseline(
      `- { cell: "arm64-*", subject: "*", check: "hook:kprobe:__x64_sys_*", reason: symbol-missing }
- { cell: "arm64-4k-6.1*", subject: "*", reason: trampoline-unsupported }
- { cell: "*+nobpflsm", subject: "*", check: "hook:lsm:*", reason: lsm-inactive }
- { cell: "arm64-16k-*", subject: ringbuf, reason: ringbuf-pagesize }
`,
      'baseline.yaml',
    );
    const gate = evaluateGate(RESULTS, baseline);
    expect(gate.unexpected.map((r) => [r.cell, r.subject, r.status, r.reason])).toEqual([['arm64-16k-6.12+nobpflsm', 'kprobe-multi', 'error', 'infra-guest-protocol']]);
  });
});
