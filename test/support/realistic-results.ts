/**
 * Realistic check results for report and gate tests, built from the real corpus
 * (every uniquely named TracingPolicy under tetragon-examples and tetragon-extra,
 * with its file and hook lines) on the ten default cell ids. The verdicts follow the
 * measured facts of findings-vm-lane.md: `__x64_sys_*` kprobes are symbol-missing on
 * arm64, LSM hooks fail with 524 (trampoline-unsupported) on arm64 6.1 and are
 * lsm-inactive on +nobpflsm cells, 4096-byte ring buffers are refused on 16K pages.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, isMap, isSeq, parseAllDocuments, type Node } from 'yaml';
import type { CheckResult } from '../../core/check.js';
import type { CellFacts } from '../../core/facts.js';
import { DEFAULT_CELL_IDS } from './design.js';
import { EXAMPLES, EXTRA, PROJECT_ROOT } from './shared.js';

export { DEFAULT_CELL_IDS };

export interface CorpusHook {
  /** `kprobe:tcp_connect`, `tracepoint:syscalls/sys_enter_write`, `lsm:file_open`, `uprobe:/bin/bash`. */
  id: string;
  line: number;
}

export interface CorpusPolicy {
  name: string;
  file: string;
  line: number;
  hooks: CorpusHook[];
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
    });
}

/** Every TracingPolicy of the corpus, first document of each name only (names repeat across examples). */
export function corpusPolicies(): CorpusPolicy[] {
  const out = new Map<string, CorpusPolicy>();
  for (const file of [...yamlFiles(EXAMPLES), ...yamlFiles(EXTRA)]) {
    const lc = new LineCounter();
    const docs = parseAllDocuments(readFileSync(file, 'utf8'), { lineCounter: lc });
    if (!Array.isArray(docs)) continue;
    for (const doc of docs) {
      if (doc.errors.length > 0) continue;
      const js = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      const name = js?.metadata?.name;
      if (!js || !/^TracingPolicy(Namespaced)?$/.test(js.kind ?? '') || !name || out.has(name)) continue;
      const lineOf = (node: unknown) => lc.linePos((node as Node | undefined)?.range?.[0] ?? 0).line;
      const hooks: CorpusHook[] = [];
      const section = (key: string, idOf: (item: Record<string, unknown>) => string | undefined) => {
        const seq = doc.getIn(['spec', key], true);
        if (!isSeq(seq)) return;
        for (const item of seq.items) {
          if (!isMap(item)) continue;
          const id = idOf(item.toJSON() as Record<string, unknown>);
          if (id) hooks.push({ id, line: lineOf(item) });
        }
      };
      section('kprobes', (k) => (typeof k.call === 'string' && !k.call.startsWith('list:') ? `kprobe:${k.call}` : undefined));
      section('tracepoints', (t) => `tracepoint:${String(t.subsystem)}/${String(t.event)}`);
      section('lsmhooks', (h) => `lsm:${String(h.hook)}`);
      section('uprobes', (u) => `uprobe:${String(u.path)}`);
      out.set(name, { name, file, line: lineOf(doc.contents), hooks });
    }
  }
  return [...out.values()];
}

/** A stable small number from a string, so evidence looks measured but never changes between runs. */
function hits(s: string): number {
  let h = 7;
  for (const ch of s) h = (h * 31 + ch.charCodeAt(0)) % 97;
  return h + 1;
}

const NOBPF_LSM = 'lockdown,capability,landlock,yama,apparmor';

/** One verdict for one hook on one cell, following the measured facts. */
function hookVerdict(hook: string, cell: string): Pick<CheckResult, 'status' | 'reason' | 'evidence'> {
  const arm64 = cell.startsWith('arm64-');
  const nobpf = cell.endsWith('+nobpflsm');
  const [kind, name = ''] = [hook.slice(0, hook.indexOf(':')), hook.slice(hook.indexOf(':') + 1)];
  if (kind === 'kprobe' && arm64 && name.startsWith('__x64_sys_')) {
    return { status: 'fail', reason: 'symbol-missing', evidence: { symbol: name, arch: 'arm64', kallsyms: 'absent', suggestion: name.replace('__x64_sys_', '__arm64_sys_') } };
  }
  if (kind === 'lsm' && cell.startsWith('arm64-4k-6.1') && !cell.startsWith('arm64-4k-6.12')) {
    return { status: 'fail', reason: 'trampoline-unsupported', evidence: { hook: name, errno: 524, error: `attach lsm/${name}: unknown error 524` } };
  }
  if (kind === 'lsm' && nobpf) {
    return { status: 'fail', reason: 'lsm-inactive', evidence: { hook: name, attached: true, hits: 0, activeLsm: NOBPF_LSM } };
  }
  return { status: 'pass', reason: null, evidence: { attached: true, hits: hits(`${hook}@${cell}`) } };
}

/**
 * The results of a plausible full run: a static `schema` check per policy, a check per
 * hook per default cell, a `trigger` check (uprobe policies are untested: skip), and
 * two feature subjects (ring buffer and kprobe-multi) with one infrastructure error.
 */
export function realisticResults(policies: CorpusPolicy[] = corpusPolicies()): CheckResult[] {
  const out: CheckResult[] = [];
  for (const p of policies) {
    out.push({ cell: 'static', lane: 'static', suite: 'lint', subject: p.name, check: 'schema', status: 'pass', reason: null, evidence: {}, durationMs: 3, source: { file: p.file, line: p.line } });
  }
  for (const cell of DEFAULT_CELL_IDS) {
    for (const p of policies) {
      for (const h of p.hooks) {
        out.push({ cell, lane: 'kernel', suite: 'policies', subject: p.name, check: `hook:${h.id}`, durationMs: 40 + hits(h.id), source: { file: p.file, line: h.line }, ...hookVerdict(h.id, cell) });
      }
      const untested = p.hooks.some((h) => h.id.startsWith('uprobe:'));
      out.push({
        cell,
        lane: 'kernel',
        suite: 'triggers',
        subject: p.name,
        check: 'trigger',
        status: untested ? 'skip' : 'pass',
        reason: untested ? 'untested' : null,
        evidence: untested ? { triggers: 0 } : { technique: 'T1059', marker: `/tmp/bpfgate-${hits(p.name)}` },
        durationMs: 120,
      });
    }
    const pages16k = cell.startsWith('arm64-16k-');
    out.push({
      cell,
      lane: 'kernel',
      suite: 'probe',
      subject: 'ringbuf',
      check: 'feature:ringbuf-4096',
      status: pages16k ? 'fail' : 'pass',
      reason: pages16k ? 'ringbuf-pagesize' : null,
      evidence: pages16k ? { entries: 4096, pageSize: 16384, error: 'map create failed: Invalid argument' } : { entries: 4096 },
      durationMs: 15,
    });
    const garbled = cell === 'arm64-16k-6.12+nobpflsm';
    out.push({
      cell,
      lane: 'kernel',
      suite: 'probe',
      subject: 'kprobe-multi',
      check: 'feature:kprobe-multi',
      status: garbled ? 'error' : 'pass',
      reason: garbled ? 'infra-guest-protocol' : null,
      evidence: garbled ? { line: 'BPFGATE-RESULT kprobe-multi {"ok":tr' } : { attached: true, hits: 2 },
      durationMs: 22,
    });
  }
  return out;
}

/** The ten default cells' facts, from the run.json of a real default-matrix run (test/fixtures/results). */
export const DEFAULT_FACTS: CellFacts[] = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'results', 'default-matrix.run.json'), 'utf8')) as { cells: CellFacts[] }
).cells;
