import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CheckResult, CheckStatus } from '../../core/check.js';
import { ResultStore, readResultsDir } from '../../core/results-store.js';
import { writeReports } from '../../reports/index.js';
import { renderJunit } from '../../reports/junit.js';
import { buildModel } from '../../reports/model.js';
import { DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-junit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface SuiteXml {
  name: string;
  attrs: Record<string, number>;
  cases: string[];
}

/** The XML markup without its CDATA sections (whose text may look like markup). */
function markup(xml: string): string {
  return xml.replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
}

/** The testsuites of a junit.xml: their name, count attributes and testcase elements (with CDATA text kept). */
function suites(xml: string): SuiteXml[] {
  return [...xml.matchAll(/<testsuite (name="([^"]*)"[^>]*)>([\s\S]*?)<\/testsuite>/g)].map((m) => {
    const attrs = Object.fromEntries([...(m[1] ?? '').matchAll(/(tests|failures|errors|skipped)="(\d+)"/g)].map((a) => [a[1], Number(a[2])]));
    const cases = [...(m[3] ?? '').matchAll(/<testcase [^>]*?(?:\/>|>[\s\S]*?<\/testcase>)/g)].map((c) => c[0]);
    return { name: m[2] ?? '', attrs, cases };
  });
}

describe('junit.xml', () => {
  it('has the counts of results.jsonl: one testsuite per cell, one testcase per subject and check', async () => {
    const out = join(root, 'run');
    const store = ResultStore.open(out);
    for (const r of realisticResults()) store.append(r);
    store.close();
    const results = await readResultsDir(out);
    await writeReports(out, results, DEFAULT_FACTS, { env: {} });
    const xml = readFileSync(join(out, 'junit.xml'), 'utf8');

    const byCell = new Map<string, CheckResult[]>();
    for (const r of results) byCell.set(r.cell, [...(byCell.get(r.cell) ?? []), r]);
    const parsed = suites(xml);
    expect(parsed.map((s) => s.name).sort()).toEqual([...byCell.keys()].sort());
    const count = (rs: CheckResult[], s: CheckStatus) => rs.filter((r) => r.status === s).length;
    for (const suite of parsed) {
      const rs = byCell.get(suite.name) ?? [];
      expect(suite.attrs).toEqual({ tests: rs.length, failures: count(rs, 'fail'), errors: count(rs, 'error'), skipped: count(rs, 'skip') });
      // The elements agree with the attributes.
      expect(suite.cases).toHaveLength(rs.length);
      expect(suite.cases.filter((c) => c.includes('<failure ')).length).toBe(count(rs, 'fail'));
      expect(suite.cases.filter((c) => c.includes('<error ')).length).toBe(count(rs, 'error'));
      expect(suite.cases.filter((c) => c.includes('<skipped/>')).length).toBe(count(rs, 'skip'));
    }
    const total = /<testsuites [^>]*tests="(\d+)" failures="(\d+)" errors="(\d+)" skipped="(\d+)"/.exec(xml)?.slice(1).map(Number);
    expect(total).toEqual([results.length, count(results, 'fail'), count(results, 'error'), count(results, 'skip')]);
  });

  it('names each testcase by subject and check, and puts the reason and evidence in a failure', () => {
    const xml = renderJunit(buildModel(realisticResults()));
    const arm = suites(xml).find((s) => s.name === 'arm64-4k-6.1');
    const nsenter = arm?.cases.find((c) => c.includes('classname="deny-nsenter" name="hook:kprobe:__x64_sys_setns"'));
    // The message is the reason and its description (core/reasons.ts), XML-escaped.
    expect(nsenter).toMatch(/<failure message="symbol-missing: a kprobe target is not a traceable kernel symbol on this cell[^"]*" type="symbol-missing">/);
    expect(nsenter).toContain('"suggestion": "__arm64_sys_setns"');
    expect(nsenter).toMatch(/<property name="source" value="[^"]*02_nsenter\.yaml:\d+"\/>/);
    const broken = suites(xml)
      .find((s) => s.name === 'arm64-16k-6.12+nobpflsm')
      ?.cases.find((c) => c.includes('classname="kprobe-multi"'));
    expect(broken).toContain('<error message="infra-guest-protocol: the guest output could not be parsed" type="infra-guest-protocol">');
    expect(broken).toContain('BPFGATE-RESULT kprobe-multi');
    const untested = suites(xml)
      .find((s) => s.name === 'x86_64-6.12')
      ?.cases.find((c) => c.includes('classname="uprobe" name="trigger"'));
    expect(untested).toContain('<skipped/>');
    expect(untested).toContain('untested: no trigger exercises this policy');
  });

  it('escapes subjects and evidence that look like XML', () => {
    const hostile: CheckResult = {
      cell: 'x86_64-6.1',
      lane: 'kernel',
      suite: 'policies',
      subject: 'a"<policy>&',
      check: 'hook:kprobe:x',
      status: 'fail',
      reason: 'load-error',
      evidence: { error: 'unexpected ]]> in </failure><testcase name="forged">' },
      durationMs: 1,
    };
    const xml = renderJunit(buildModel([hostile]));
    expect(xml).toContain('classname="a&quot;&lt;policy>&amp;"');
    // The evidence stays text: CDATA is split around its "]]>", so no element is forged.
    expect(xml).toContain(']]]]><![CDATA[>');
    expect(markup(xml).match(/<testcase /g)).toHaveLength(1);
    expect(markup(xml)).not.toContain('forged');
  });
});
