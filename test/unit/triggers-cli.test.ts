import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { triggersCommand, type TextSink } from '../../cli/commands/triggers.js';
import { loadTriggerCatalogue, TRIGGER_CATALOGUE_DIR } from '../../suites/triggers/load.js';
import { TACTICS } from '../../suites/triggers/model.js';
import { CLI } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-triggers-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sink(): TextSink & { text: () => string } {
  const chunks: string[] = [];
  return { write: (t: string) => chunks.push(t), text: () => chunks.join('') };
}

async function run(opts: Parameters<typeof triggersCommand>[1]) {
  const out = sink();
  const err = sink();
  const code = await triggersCommand('list', { ...opts, out, err });
  return { code, out: out.text(), err: err.text() };
}

describe('bpfgate triggers list', () => {
  it('prints one row per trigger, sorted by tactic in kill-chain order, then technique', async () => {
    const { code, out, err } = await run({});
    expect(code).toBe(0);
    expect(err).toBe('');
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TECHNIQUE\s+TACTIC\s+NAME\s+HOOKS$/);
    const catalogue = await loadTriggerCatalogue();
    const rows = lines.slice(1, 1 + catalogue.length).map((l) => l.split(/\s{2,}/));
    expect(rows.map((r) => r[0]).sort()).toEqual(catalogue.map((t) => t.id).sort());
    const keys = rows.map((r) => [TACTICS.indexOf((r[2] ?? '') as (typeof TACTICS)[number]), r[1] ?? ''] as const);
    for (const [rank] of keys) expect(rank).toBeGreaterThanOrEqual(0);
    for (let i = 1; i < keys.length; i++) {
      const [a, b] = [keys[i - 1], keys[i]];
      expect(a !== undefined && b !== undefined && (a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1])), `row ${i}`).toBe(true);
    }
    const shell = rows.find((r) => r[0] === 't1059-004-unix-shell');
    expect(shell?.slice(1, 4)).toEqual(['T1059.004', 'execution', 'Command and Scripting Interpreter: Unix Shell']);
    expect(shell?.[4]).toContain('kprobe:security_bprm_check,lsm:bprm_check_security');
    const techniques = new Set(catalogue.map((t) => t.technique)).size;
    const tactics = new Set(catalogue.map((t) => t.tactic)).size;
    expect(lines.at(-1)).toBe(`${catalogue.length} triggers, ${techniques} techniques, ${tactics} tactics`);
  });

  it('lists every field of every trigger as JSON', async () => {
    const { code, out } = await run({ format: 'json' });
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { catalogue: string; count: number; tactics: string[]; triggers: Record<string, unknown>[] };
    expect(doc.catalogue).toBe(TRIGGER_CATALOGUE_DIR);
    expect(doc.count).toBe(doc.triggers.length);
    expect(doc.tactics).toEqual(TACTICS.filter((t) => doc.tactics.includes(t)));
    const rootkit = doc.triggers.find((t) => t.id === 't1014-rootkit');
    expect(Object.keys(rootkit ?? {}).sort()).toEqual(
      ['cleanup', 'description', 'expect', 'file', 'hooks', 'id', 'marker', 'name', 'steps', 'tactic', 'technique'].sort(),
    );
    expect(rootkit?.marker).toBe('bpfgate-t1014-rootkit');
    expect(rootkit?.hooks).toContain('kprobe:bpf_check');
  });

  it('lists a directory of the user\'s own triggers', async () => {
    const own = mkdtempSync(join(dir, 'own-'));
    writeFileSync(
      join(own, 'my-probe.yaml'),
      [
        'id: my-probe',
        'technique: T1082',
        'name: System Information Discovery',
        'tactic: discovery',
        'description: reads uname',
        'marker: bpfgate-my-probe',
        'steps: uname -a > "/tmp/$BPFGATE_MARKER"',
        'cleanup: rm -f "/tmp/$BPFGATE_MARKER"',
        'hooks: [kprobe:sys_newuname]',
        'expect: [{ type: process_kprobe, function_name: sys_newuname }]',
      ].join('\n'),
    );
    const { code, out } = await run({ dir: own });
    expect(code).toBe(0);
    expect(out).toMatch(/^my-probe\s+T1082\s+discovery\s+System Information Discovery\s+kprobe:sys_newuname$/m);
    expect(out.trimEnd().split('\n').at(-1)).toBe('1 triggers, 1 techniques, 1 tactics');
  });

  it('exits 2 with a one-line positioned message on a bad catalogue', async () => {
    const bad = mkdtempSync(join(dir, 'bad-'));
    const text = [
      'id: broken',
      'technique: 1059',
      'name: Unix Shell',
      'tactic: execution',
      'description: a technique id without its T',
      'marker: bpfgate-broken',
      'steps: sh -c true "$BPFGATE_MARKER"',
      'cleanup: "true"',
      'hooks: [kprobe:security_bprm_check]',
      'expect: [{ type: process_exec, argumentsContains: bpfgate-broken }]',
    ];
    writeFileSync(join(bad, 'broken.yaml'), text.join('\n'));
    const { code, out, err } = await run({ dir: bad });
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toBe(`bpfgate: ${join(bad, 'broken.yaml')}:2:12: technique: expected a string (got 1059) [trigger-schema]\n`);
  });

  it('exits 2 on an unknown subcommand', async () => {
    const err = sink();
    const code = await triggersCommand('show' as 'list', { out: sink(), err });
    expect(code).toBe(2);
    expect(err.text()).toBe('bpfgate: triggers: unknown subcommand "show"; expected: list [usage]\n');
  });

  it.skipIf(!existsSync(CLI))('prints the same catalogue from the built CLI (needs the build: npm run build)', async () => {
    const stdout = execFileSync(process.execPath, [CLI, 'triggers', 'list', '--format', 'json'], { encoding: 'utf8' });
    const fromCli = JSON.parse(stdout) as { triggers: { id: string; marker: string }[] };
    const { out } = await run({ format: 'json' });
    const direct = JSON.parse(out) as { triggers: { id: string; marker: string }[] };
    expect(fromCli.triggers.map((t) => [t.id, t.marker])).toEqual(direct.triggers.map((t) => [t.id, t.marker]));
  });
});
