import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateGate, parseBaseline } from '../../core/baseline.js';
import type { CheckResult } from '../../core/check.js';
import { REASONS } from '../../core/reasons.js';
import { annotations, escapeData, escapeProperty, SUMMARY_LIMIT, writeGithub } from '../../reports/github.js';
import { writeReports } from '../../reports/index.js';
import { renderMarkdown } from '../../reports/markdown.js';
import { buildModel } from '../../reports/model.js';
import { fixtureManifest, fixtureResults } from '../support/report-fixture.js';
import { DEFAULT_FACTS, realisticResults } from '../support/realistic-results.js';
import { SHARED } from '../support/shared.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-gh-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const RESULTS = realisticResults();
const CELLS = DEFAULT_FACTS;

/** Undo GitHub's escaping, as the runner does when it reads a workflow command. */
function unescapeData(s: string): string {
  return s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%3A/g, ':').replace(/%2C/g, ',').replace(/%25/g, '%');
}

interface Command {
  level: string;
  props: Record<string, string>;
  message: string;
}

function parseCommand(line: string): Command {
  const m = /^::(error|warning) ([^:]*)::(.*)$/.exec(line);
  expect(m, line).not.toBeNull();
  const props = Object.fromEntries((m?.[2] ?? '').split(',').map((p) => [p.slice(0, p.indexOf('=')), unescapeData(p.slice(p.indexOf('=') + 1))]));
  return { level: m?.[1] ?? '', props, message: unescapeData(m?.[3] ?? '') };
}

describe('GitHub Actions output', () => {
  it('escapes data and properties by the workflow-command rules', () => {
    expect(escapeData('50% done\r\nnext')).toBe('50%25 done%0D%0Anext');
    expect(escapeProperty('bpfgate: a, b\n%')).toBe('bpfgate%3A a%2C b%0A%25');
    // % first, so an escape is never escaped twice.
    expect(escapeProperty('%3A')).toBe('%253A');
  });

  it('annotates each failing policy line once, relative to the workspace, listing its cells', () => {
    const lines = annotations(RESULTS, { workspace: SHARED });
    const commands = lines.map(parseCommand);
    const nsenter = commands.filter((c) => c.props.title === 'bpfgate: deny-nsenter hook:kprobe:__x64_sys_setns');
    expect(nsenter).toHaveLength(1);
    const source = RESULTS.find((r) => r.subject === 'deny-nsenter' && r.check === 'hook:kprobe:__x64_sys_setns')?.source;
    expect(nsenter[0]?.props).toEqual({
      file: 'corpus/tetragon-extra/docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/02_nsenter.yaml',
      line: String(source?.line),
      title: 'bpfgate: deny-nsenter hook:kprobe:__x64_sys_setns',
    });
    expect(nsenter[0]?.message.split('\n')).toEqual([
      `symbol-missing: ${REASONS['symbol-missing']}`,
      'on arm64-4k-6.1, arm64-4k-6.12, arm64-16k-6.12, arm64-4k-6.1+nobpflsm, arm64-4k-6.12+nobpflsm, arm64-16k-6.12+nobpflsm',
      'evidence (arm64-4k-6.1): {"symbol":"__x64_sys_setns","arch":"arm64","kallsyms":"absent","suggestion":"__arm64_sys_setns"}',
    ]);
    // Failures without a source line (ring buffer feature, infra error) are not annotated.
    expect(commands.every((c) => c.props.file?.startsWith('corpus/'))).toBe(true);
    expect(commands.some((c) => c.props.title?.includes('ringbuf'))).toBe(false);
    // One per failing (line, check, reason), however many cells.
    const failingLines = new Set(RESULTS.filter((r) => r.status === 'fail' && r.source).map((r) => `${r.source?.file}:${r.source?.line} ${r.check} ${r.reason}`));
    expect(lines).toHaveLength(failingLines.size);
  });

  it('annotates failures the baseline expects as warnings', () => {
    const gate = evaluateGate(RESULTS, parseBaseline('- { cell: "arm64-*", subject: "*", check: "hook:kprobe:__x64_sys_*", reason: symbol-missing }\n', 'b.yaml'));
    const expected = new Set(gate.expected.map((r) => [r.cell, r.lane, r.suite, r.subject, r.check].join('\u0000')));
    const commands = annotations(RESULTS, { workspace: SHARED, expected }).map(parseCommand);
    expect(commands.filter((c) => c.props.title?.includes('__x64_sys_')).every((c) => c.level === 'warning' && c.message.includes('(expected by the baseline)'))).toBe(true);
    expect(commands.filter((c) => c.props.title?.includes('lsm')).every((c) => c.level === 'error')).toBe(true);
  });

  it('keeps commas, colons and newlines of a policy path and message intact through escaping', () => {
    const odd: CheckResult = {
      cell: 'x86_64-6.1',
      lane: 'kernel',
      suite: 'policies',
      subject: 'policy,with:odd%name',
      check: 'hook:kprobe:x',
      status: 'fail',
      reason: 'load-error',
      evidence: { error: 'line one\nline two: 100%' },
      durationMs: 1,
      source: { file: join(SHARED, 'dir, with: comma', 'p.yaml'), line: 3, column: 5 },
    };
    const [line] = annotations([odd], { workspace: SHARED });
    expect(line?.split('::')).toHaveLength(3);
    const cmd = parseCommand(line ?? '');
    expect(cmd.props).toEqual({ file: 'dir, with: comma/p.yaml', line: '3', col: '5', title: 'bpfgate: policy,with:odd%name hook:kprobe:x' });
    expect(cmd.message).toContain('{"error":"line one\\nline two: 100%"}');
  });

  it('appends the Markdown table to the job summary and prints annotations only under GitHub Actions', async () => {
    const out = join(root, 'gh');
    const summary = join(root, 'step-summary.md');
    writeFileSync(summary, '## earlier step\n');
    const printed: string[] = [];
    await writeReports(out, RESULTS, CELLS, {
      env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary, GITHUB_WORKSPACE: SHARED },
      write: (l) => printed.push(l),
    });
    expect(readFileSync(summary, 'utf8')).toBe(`## earlier step\n${readFileSync(join(out, 'table.md'), 'utf8')}\n`);
    expect(printed).toEqual(annotations(RESULTS, { workspace: SHARED }));

    const quiet: string[] = [];
    await writeGithub('| table |', RESULTS, { env: { GITHUB_STEP_SUMMARY: summary }, write: (l) => quiet.push(l) });
    expect(quiet).toEqual([]);
    expect(readFileSync(summary, 'utf8')).not.toContain('| table |');
  });

  it('keeps the job summary under 1 MiB with what earlier steps wrote, cutting the report at a line with a note', async () => {
    const summary = join(root, 'nearly-full-summary.md');
    const earlier = `${'earlier step output\n'.repeat(Math.floor((SUMMARY_LIMIT - 6000) / 20))}`;
    writeFileSync(summary, earlier);
    const markdown = renderMarkdown(buildModel(fixtureResults(), fixtureManifest().cells));
    expect(Buffer.byteLength(markdown)).toBeGreaterThan(6000);
    await writeGithub(markdown, [], { env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary }, write: () => {} });
    expect(statSync(summary).size).toBeLessThanOrEqual(SUMMARY_LIMIT);
    const added = readFileSync(summary, 'utf8').slice(earlier.length);
    expect(added.startsWith(markdown.split('\n')[0]!)).toBe(true);
    expect(added).toMatch(/\*\*The report is cut here\*\* \(\d+ of \d+ lines\) to stay under GitHub's 1 MiB job summary limit; the whole report is table\.md and table\.html/);
  });

  it('falls back to the cwd as workspace', async () => {
    const printed: string[] = [];
    await writeGithub('', RESULTS, { env: { GITHUB_ACTIONS: 'true' }, write: (l) => printed.push(l) });
    expect(printed).toEqual(annotations(RESULTS, { workspace: process.cwd() }));
    expect(printed[0]).toContain(`file=${escapeProperty(relative(process.cwd(), join(SHARED, 'corpus')))}/`);
  });
});
