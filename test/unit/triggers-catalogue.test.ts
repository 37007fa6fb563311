import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTriggerCatalogue, TRIGGER_CATALOGUE_DIR, TRIGGER_SCHEMA_FILE } from '../../suites/triggers/load.js';
import { parseHookHint, TACTICS, type Trigger } from '../../suites/triggers/model.js';

// The catalogue's scripts are only ever syntax-checked here: they run in QEMU guests, never on this host.
const hasBusybox = spawnSync('busybox', ['--help'], { stdio: 'ignore' }).status === 0;
const hasPerl = spawnSync('perl', ['-v'], { stdio: 'ignore' }).status === 0;
const X86_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const GENERIC_HEADER = '/usr/include/asm-generic/unistd.h';
const hasHeaders = existsSync(X86_HEADER) && existsSync(GENERIC_HEADER);

let triggers: Trigger[];
const dir = mkdtempSync(join(tmpdir(), 'bpfgate-triggers-'));
beforeAll(async () => {
  triggers = await loadTriggerCatalogue();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Perl code of the steps: `-e '...'` after the names the catalogue runs perl as, and `P='...'`. */
function perlSnippets(steps: string): string[] {
  const re = /(?:\b(?:perl|bash|curl|sshd|containerd-shim|kworker|xmrig)"? -e |\bP=)'([^']*)'/g;
  return [...steps.matchAll(re)].map((m) => m[1] ?? '');
}

/** `#define __NR_name N` (and asm-generic's `__NR3264_name`) of one header. */
function syscallTable(header: string): Map<string, number> {
  const table = new Map<string, number>();
  for (const m of readFileSync(header, 'utf8').matchAll(/^#define __NR(?:3264)?_(\w+)\s+(\d+)\s*$/gm)) {
    if (m[1] && m[2] && !table.has(m[1])) table.set(m[1], Number(m[2]));
  }
  return table;
}

describe('the shipped trigger catalogue', () => {
  it('loads from the directory that ships with the tool', () => {
    expect(triggers.length).toBeGreaterThanOrEqual(40);
    for (const t of triggers) expect(t.file.startsWith(TRIGGER_CATALOGUE_DIR)).toBe(true);
  });

  it('covers at least 40 techniques across at least 10 tactics', () => {
    const techniques = new Set(triggers.map((t) => t.technique));
    const tactics = new Set(triggers.map((t) => t.tactic));
    expect(techniques.size).toBeGreaterThanOrEqual(40);
    expect(tactics.size).toBeGreaterThanOrEqual(10);
    for (const tactic of tactics) expect(TACTICS).toContain(tactic);
  });

  it('has unique ids and markers, and no marker inside another', () => {
    expect(new Set(triggers.map((t) => t.id)).size).toBe(triggers.length);
    const markers = triggers.map((t) => t.marker);
    expect(new Set(markers).size).toBe(markers.length);
    for (const a of markers) for (const b of markers) if (a !== b) expect(a.includes(b), `${a} contains ${b}`).toBe(false);
  });

  it('names each file after its id, each id after its technique, and each marker after its id', () => {
    for (const t of triggers) {
      expect(basename(t.file)).toBe(`${t.id}.yaml`);
      expect(t.id.startsWith(`${t.technique.toLowerCase().replace('.', '-')}-`), t.id).toBe(true);
      expect(t.marker).toBe(`bpfgate-${t.id}`);
    }
  });

  it('points editors of every file at the schema that ships with the tool', () => {
    for (const t of triggers) {
      const first = readFileSync(t.file, 'utf8').split('\n')[0] ?? '';
      const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
      expect(m, t.id).not.toBeNull();
      expect(resolve(dirname(t.file), m?.[1] ?? '')).toBe(TRIGGER_SCHEMA_FILE);
    }
  });

  it('gives every hook hint a known kind and a well-formed name', () => {
    for (const t of triggers) {
      for (const hint of t.hooks) expect(parseHookHint(hint), `${t.id}: ${hint}`).not.toHaveProperty('problem');
    }
  });

  it('expects events only from hooks the trigger hints', () => {
    for (const t of triggers) {
      for (const e of t.expect) {
        if (e.type === 'process_kprobe') expect(t.hooks, t.id).toContain(`kprobe:${e.function_name}`);
        if (e.type === 'process_lsm') expect(t.hooks, t.id).toContain(`lsm:${e.function_name}`);
        if (e.type === 'process_tracepoint') expect(t.hooks, t.id).toContain(`tracepoint:${e.subsys}/${e.event}`);
      }
    }
  });

  it('ties at least one expected event of every trigger back to it by marker or planted binary', () => {
    for (const t of triggers) {
      const tied = t.expect.some(
        (e) =>
          e.argumentsContains === t.marker ||
          e.binary !== undefined ||
          ('args' in e && (e.args ?? []).some((a) => `${a.contains ?? ''}${String(a.equals ?? '')}`.includes(t.marker))),
      );
      expect(tied, t.id).toBe(true);
    }
  });

  it('keeps the scripts safe to run from any shell: no exit, no set -e', () => {
    for (const t of triggers) {
      for (const script of [t.steps, t.cleanup]) {
        expect(script, t.id).not.toMatch(/^\s*exit\b/m);
        expect(script, t.id).not.toMatch(/^\s*set -e/m);
      }
      // Every trigger works under /tmp/$BPFGATE_MARKER and its cleanup removes that directory.
      expect(t.steps, t.id).toContain('/tmp/$BPFGATE_MARKER');
      expect(t.cleanup, t.id).toMatch(/rm -rf .*"(\/tmp\/\$BPFGATE_MARKER|\$W)"$/m);
    }
  });

  it.skipIf(!hasBusybox)('has step and cleanup scripts that busybox sh -n accepts (needs busybox on PATH)', () => {
    let checked = 0;
    for (const t of triggers) {
      for (const [part, script] of [['steps', t.steps], ['cleanup', t.cleanup]] as const) {
        const file = join(dir, `${t.id}.${part}.sh`);
        writeFileSync(file, script);
        const r = spawnSync('busybox', ['sh', '-n', file], { encoding: 'utf8' });
        expect(r.status, `${t.id} ${part}: ${r.stderr}`).toBe(0);
        checked++;
      }
    }
    expect(checked).toBe(triggers.length * 2);
  });

  it.skipIf(!hasPerl)('has perl snippets that compile, with nothing run at compile time (needs perl on PATH)', () => {
    let checked = 0;
    for (const t of triggers) {
      for (const code of perlSnippets(t.steps)) {
        // perl -c runs BEGIN blocks and use statements: the catalogue's perl has none, so -c only compiles.
        expect(code, t.id).not.toMatch(/\b(BEGIN|CHECK|INIT|UNITCHECK|use|require|no)\b\s*[{\w]/);
        const r = spawnSync('perl', ['-c', '-e', code], { encoding: 'utf8' });
        expect(r.status, `${t.id}: ${r.stderr}`).toBe(0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(30);
  });

  it.skipIf(!hasHeaders)('uses syscall numbers that name the same syscall on arm64 and x86_64 (needs the kernel uapi headers of linux-libc-dev)', () => {
    const x86 = syscallTable(X86_HEADER);
    const arm = syscallTable(GENERIC_HEADER);
    const names = (table: Map<string, number>, nr: number) => [...table].filter(([, n]) => n === nr).map(([name]) => name);
    let pairs = 0;
    for (const t of triggers) {
      for (const code of perlSnippets(t.steps)) {
        // Named tables: `arm64" ? (setuid => 146, ...) : (setuid => 105, ...)`.
        for (const m of code.matchAll(/\?\s*\(([^()]*=>[^()]*)\)\s*:\s*\(([^()]*=>[^()]*)\)/g)) {
          const parse = (list = '') => new Map([...list.matchAll(/(\w+)\s*=>\s*(\d+)/g)].map((p) => [p[1] ?? '', Number(p[2])]));
          const [a64, x64] = [parse(m[1]), parse(m[2])];
          expect([...a64.keys()], t.id).toEqual([...x64.keys()]);
          for (const [name, nr] of a64) {
            expect(arm.get(name), `${t.id}: arm64 ${name}`).toBe(nr);
            expect(x86.get(name), `${t.id}: x86_64 ${name}`).toBe(x64.get(name));
            pairs++;
          }
        }
        // Positional pairs: `$a64 ? 280 : 321` and `arm64" ? (270, 271) : (310, 311)`.
        const positional = [
          ...[...code.matchAll(/\?\s*(\d+)\s*:\s*(\d+)/g)].map((m) => [[Number(m[1]), Number(m[2])]]),
          ...[...code.matchAll(/\?\s*\(([\d,\s]+)\)\s*:\s*\(([\d,\s]+)\)/g)].map((m) => {
            const [a, x] = [(m[1] ?? '').split(',').map(Number), (m[2] ?? '').split(',').map(Number)];
            return a.map((n, i) => [n, x[i] ?? -1]);
          }),
        ].flat();
        for (const [a64, x64] of positional) {
          const same = names(arm, a64 ?? -1).filter((name) => x86.get(name) === x64);
          expect(same.length, `${t.id}: arm64 ${a64} and x86_64 ${x64} are not the same syscall`).toBeGreaterThan(0);
          pairs++;
        }
      }
    }
    expect(pairs).toBeGreaterThanOrEqual(40);
  });
});
