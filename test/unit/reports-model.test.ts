import { describe, expect, it } from 'vitest';
import type { CheckResult, CheckStatus } from '../../core/check.js';
import { evaluateGate, parseBaseline } from '../../core/baseline.js';
import { buildModel, cellFromId, compareRuns, policyFileOf, worse } from '../../reports/model.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { fixtureManifest, fixtureResults } from '../support/report-fixture.js';
import { DEFAULT_CELL_IDS, DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const RESULTS = realisticResults();
const CELLS = DEFAULT_FACTS;

/** A deterministic shuffle, so the test does not depend on luck. */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('the report model', () => {
  it('orders statuses error > fail > skip > pass', () => {
    const order: CheckStatus[] = ['pass', 'skip', 'fail', 'error'];
    for (const [i, a] of order.entries()) for (const [j, b] of order.entries()) expect(worse(a, b)).toBe(order[Math.max(i, j)]);
  });

  it('has a column per cell of run.json in its order, then the cells only the results name', () => {
    const model = buildModel(RESULTS, CELLS);
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static']);
    expect(model.cells[9]).toEqual({
      id: 'arm64-16k-6.12+nobpflsm',
      arch: 'arm64',
      pages: 16,
      kernel: '6.12',
      release: '6.12.118+deb13-arm64-16k',
      kernelSource: 'trixie-security linux-image-6.12.118+deb13-arm64-16k 6.12.118-1',
      bootArgs: ['lsm=lockdown,capability,landlock,yama,apparmor'],
      lsm: ['lockdown', 'capability', 'landlock', 'yama', 'apparmor', 'ima', 'evm'],
      accel: 'tcg',
      agent: null,
      platform: 'qemu',
      node: null,
    });
    expect(model.cells[10]).toEqual(cellFromId('static'));
    expect(model.cells[10]?.arch).toBeNull();
  });

  it('guesses nothing from a cell id when run.json is not at hand', () => {
    const model = buildModel(RESULTS);
    const nobpf = model.cells.find((c) => c.id === 'arm64-4k-6.1+nobpflsm');
    expect(nobpf).toEqual(cellFromId('arm64-4k-6.1+nobpflsm'));
    expect(nobpf).toMatchObject({ arch: null, pages: null, kernel: null, lsm: null });
    // Without run.json there is no matrix order: cells come sorted by id.
    expect(model.cells.map((c) => c.id)).toEqual([...DEFAULT_CELL_IDS, 'static'].sort());
  });

  it('gives each policy x cell its worst status and the first reason of that status', () => {
    const model = buildModel(RESULTS, CELLS);
    const row = (s: string) => model.rows.find((r) => r.subject === s);
    const nsenter = row('deny-nsenter');
    expect(nsenter?.cells['x86_64-6.1']).toMatchObject({ status: 'pass', reason: null });
    expect(nsenter?.cells['arm64-4k-6.12']).toMatchObject({ status: 'fail', reason: 'symbol-missing', reasons: ['symbol-missing'] });
    expect(nsenter?.status).toBe('fail');
    const lsm = row('lsm-file-open');
    expect(lsm?.cells['arm64-4k-6.1']?.reason).toBe('trampoline-unsupported');
    expect(lsm?.cells['x86_64-6.12+nobpflsm']?.reason).toBe('lsm-inactive');
    expect(lsm?.cells['arm64-16k-6.12']?.status).toBe('pass');
    // The uprobe policy has no trigger: its hooks pass, its trigger check is skipped as untested.
    const uprobe = row('uprobe');
    expect(uprobe?.cells['x86_64-6.1']).toMatchObject({ status: 'skip', reason: 'untested' });
    expect(row('kprobe-multi')?.cells['arm64-16k-6.12+nobpflsm']).toMatchObject({ status: 'error', reason: 'infra-guest-protocol' });
    expect(row('kprobe-multi')?.cells['static']).toBeNull();
  });

  it('lets an error outrank a failure in the same pair and keeps both reasons', () => {
    const extra: CheckResult = {
      cell: 'arm64-4k-6.12',
      lane: 'kernel',
      suite: 'triggers',
      subject: 'deny-nsenter',
      check: 'trigger',
      status: 'error',
      reason: 'infra-boot-timeout',
      evidence: { timeoutMs: 120000, lastLine: '[    4.2] Run /init as init process' },
      durationMs: 120000,
    };
    const pair = buildModel([...RESULTS, extra], CELLS).rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-4k-6.12'];
    expect(pair?.status).toBe('error');
    expect(pair?.reason).toBe('infra-boot-timeout');
    expect(new Set(pair?.reasons)).toEqual(new Set(['symbol-missing', 'infra-boot-timeout']));
    expect(pair?.counts).toEqual({ error: 1, fail: 1, skip: 0, pass: 0 });
  });

  it('keeps every check of a pair with its evidence, in a stable order', () => {
    const model = buildModel(RESULTS, CELLS);
    const pair = model.rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-16k-6.12'];
    expect(pair?.checks.map((c) => c.check)).toEqual(['hook:kprobe:__x64_sys_setns', 'trigger']);
    expect(pair?.checks[0]?.evidence).toMatchObject({ symbol: '__x64_sys_setns', kallsyms: 'absent' });
    expect(pair?.checks[0]?.source?.file).toMatch(/02_nsenter\.yaml$/);
  });

  it('is the same whatever order the checks finished in', () => {
    expect(buildModel(shuffled(RESULTS), CELLS)).toEqual(buildModel(RESULTS, CELLS));
  });

  it('counts every check once, per status, per reason and per row', () => {
    const model = buildModel(RESULTS, CELLS);
    const byStatus = (s: CheckStatus) => RESULTS.filter((r) => r.status === s).length;
    expect(model.summary.counts).toEqual({ pass: byStatus('pass'), fail: byStatus('fail'), error: byStatus('error'), skip: byStatus('skip') });
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(model.rows.reduce((n, r) => n + r.counts.pass + r.counts.fail + r.counts.error + r.counts.skip, 0)).toBe(RESULTS.length);
    expect(model.reasons.find((r) => r.code === 'symbol-missing')?.count).toBe(RESULTS.filter((r) => r.reason === 'symbol-missing').length);
    expect(model.reasons.map((r) => r.code)).toEqual(['infra-guest-protocol', 'lsm-inactive', 'ringbuf-pagesize', 'symbol-missing', 'trampoline-unsupported', 'untested']);
    // Sections in their order (kernel features, then policies), subjects sorted within each.
    expect(model.rows.map((r) => r.section)).toEqual([...model.rows.filter((r) => r.section === 'features'), ...model.rows.filter((r) => r.section === 'policies')].map((r) => r.section));
    for (const section of ['features', 'policies'] as const) {
      const subjects = model.rows.filter((r) => r.section === section).map((r) => r.subject);
      expect(subjects).toEqual([...subjects].sort());
    }
  });

  it('takes the last result of a check recorded twice', () => {
    const first = RESULTS.find((r) => r.subject === 'deny-nsenter' && r.cell === 'arm64-4k-6.1' && r.status === 'fail') as CheckResult;
    const rerun: CheckResult = { ...first, status: 'pass', reason: null, evidence: { attached: true, hits: 3 } };
    const model = buildModel([...RESULTS, rerun], CELLS);
    expect(model.summary.checks).toBe(RESULTS.length);
    expect(model.rows.find((r) => r.subject === 'deny-nsenter')?.cells['arm64-4k-6.1']?.status).toBe('pass');
  });
});

describe('the report model of a real run (test/fixtures/reports)', async () => {
  const results = fixtureResults();
  const manifest = fixtureManifest();
  const triggers = (await loadTriggerCatalogue()).map((t) => ({ id: t.id, technique: t.technique, name: t.name, tactic: t.tactic, hooks: t.hooks }));
  const policyFiles = manifest.inputs.policies.files.map((f) => f.path);
  const model = buildModel(results, manifest.cells, { policyFiles, triggers, link: (file) => `https://example.test/${file.split('/').slice(-1)[0]}` });
  const row = (subject: string) => model.rows.find((r) => r.subject === subject)!;

  it('puts kernel features, policies and triggers in their own sections, in that order', () => {
    const of = (section: string) => model.rows.filter((r) => r.section === section).map((r) => r.subject);
    expect(of('features')).toEqual(['fentry', 'fmod-ret', 'kernel', 'kprobe', 'kprobe-multi', 'lsm', 'override-return', 'ringbuf-16384', 'ringbuf-4096', 'ringbuf-65536', 'tracepoint']);
    expect(of('triggers')).toEqual(['t1003-008-etc-passwd-and-shadow', 't1046-network-service-discovery', 't1059-004-unix-shell', 't1552-004-private-keys', 't1611-escape-to-host', 't1620-reflective-code-loading']);
    expect(of('policies')).toContain('deny-nsenter');
    expect(of('policies')).toHaveLength(13);
    expect(of('nodes')).toEqual([]);
    expect(model.rows.map((r) => r.section)).toEqual([...of('features').map(() => 'features'), ...of('policies').map(() => 'policies'), ...of('triggers').map(() => 'triggers')]);
  });

  it('names a policy by its metadata.name and its file relative to its --policies root, with a link to its line', () => {
    expect(row('syscalls@tetragon-examples/dev_queue_xmit.yaml').label).toEqual({
      name: 'syscalls',
      detail: 'tetragon-examples/dev_queue_xmit.yaml',
      technique: null,
      tactic: null,
      source: { file: 'tetragon-examples/dev_queue_xmit.yaml', line: row('syscalls@tetragon-examples/dev_queue_xmit.yaml').source!.line, href: 'https://example.test/dev_queue_xmit.yaml' },
    });
    expect(row('deny-nsenter').label.detail).toBe('tetragon-extra/docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/02_nsenter.yaml');
    // The longest run.json path a source ends with, whatever directory bpfgate ran from.
    expect(policyFileOf('/x/corpus/tetragon-examples/bpf.yaml', ['bpf.yaml', 'tetragon-examples/bpf.yaml'])).toBe('tetragon-examples/bpf.yaml');
    expect(policyFileOf('../shared/corpus/other.yaml', policyFiles)).toBeNull();
  });

  it('names a trigger by its ATT&CK technique, from the catalogue', () => {
    expect(row('t1003-008-etc-passwd-and-shadow').label).toMatchObject({
      name: 'OS Credential Dumping: /etc/passwd and /etc/shadow',
      detail: 't1003-008-etc-passwd-and-shadow',
      technique: 'T1003.008',
      tactic: 'credential-access',
    });
  });

  it('keeps a policy that shares its name with a kernel feature in its own row', () => {
    const feature = results.find((r) => r.subject === 'override-return' && r.suite === 'probe')!;
    const policy: CheckResult = { ...results.find((r) => r.subject === 'bpf' && r.check === 'schema' && r.cell === feature.cell)!, subject: 'override-return' };
    const m = buildModel([feature, policy], manifest.cells);
    expect(m.rows.map((r) => [r.section, r.subject, r.cells[feature.cell]?.checks.map((c) => c.check)])).toEqual([
      ['features', 'override-return', ['feature']],
      ['policies', 'override-return', ['schema']],
    ]);
  });

  it('counts each cell\'s subjects by their worst status', () => {
    const counts = model.summary.perCell['arm64-16k-6.12']!;
    const pairs = model.rows.map((r) => r.cells['arm64-16k-6.12']).filter((p) => p !== null);
    expect(counts.pass + counts.fail + counts.error + counts.skip).toBe(pairs.length);
    expect(counts.fail).toBe(pairs.filter((p) => p?.status === 'fail').length);
  });

  it('lists what changed against a previous run: worse, changed reason, better, new and gone', () => {
    const hooks = (cell: string) => results.find((r) => r.subject === 'deny-nsenter' && r.cell === cell && r.check === 'hooks')!;
    const previous = results
      .filter((r) => !(r.subject === 'bpf' && r.cell === 'x86_64-6.1' && r.check === 'needs'))
      .map((r) => {
        if (r === hooks('arm64-4k-6.12')) return { ...r, status: 'pass' as const, reason: null };
        if (r === hooks('x86_64-6.1')) return { ...r, status: 'fail' as const, reason: 'not-fired' as const };
        if (r === hooks('arm64-16k-6.12')) return { ...r, reason: 'load-error' as const };
        return r;
      });
    const gone = { ...hooks('x86_64-6.1'), check: 'hooks-old' };
    const cmp = compareRuns('prev-run', [...previous, gone], results);
    expect(cmp.counts).toEqual({ worse: 1, changed: 1, better: 1, new: 1, gone: 1 });
    expect(cmp.changes.map((c) => [c.kind, c.subject, c.cell, c.check])).toEqual([
      ['worse', 'deny-nsenter', 'arm64-4k-6.12', 'hooks'],
      ['changed', 'deny-nsenter', 'arm64-16k-6.12', 'hooks'],
      ['better', 'deny-nsenter', 'x86_64-6.1', 'hooks'],
      ['new', 'bpf', 'x86_64-6.1', 'needs'],
      ['gone', 'deny-nsenter', 'x86_64-6.1', 'hooks-old'],
    ]);
    expect(cmp.changes[0]).toMatchObject({ before: { status: 'pass', reason: null }, after: { status: 'fail', reason: 'symbol-missing' } });
    expect(compareRuns('same', results, results).changes).toEqual([]);
    expect(buildModel(results, manifest.cells, { previous: { against: 'prev-run', results: previous } }).comparison?.counts.worse).toBe(1);
  });

  it('lists the failures the baseline does not expect, and the entries that now pass', () => {
    const baseline = parseBaseline(
      [
        '- {cell: "arm64-*", subject: deny-nsenter, reason: symbol-missing}',
        '- {cell: "x86_64-*", subject: deny-nsenter, reason: symbol-missing}',
      ].join('\n'),
      'baseline.yaml',
    );
    const gate = evaluateGate(results, baseline);
    const m = buildModel(results, manifest.cells, { gate });
    expect(m.baseline?.unexpected.length).toBe(gate.unexpected.length);
    expect(m.baseline?.unexpected.some((u) => u.subject === 'deny-nsenter')).toBe(false);
    expect(m.baseline?.unexpected.some((u) => u.subject === 'lsm-file-open' && u.reason === 'lsm-inactive')).toBe(true);
    expect(m.baseline?.expected).toBe(results.filter((r) => r.subject === 'deny-nsenter' && r.status === 'fail').length);
    expect(m.baseline?.fixed).toEqual([{ cell: 'x86_64-*', subject: 'deny-nsenter', check: null, reason: 'symbol-missing', where: 'baseline.yaml:2' }]);
  });
});
