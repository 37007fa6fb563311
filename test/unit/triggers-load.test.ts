import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../core/errors.js';
import { loadTriggerCatalogue, loadTriggerFiles, TRIGGER_CATALOGUE_DIR } from '../../suites/triggers/load.js';
import { parseHookHint } from '../../suites/triggers/model.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-trigger-load-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh directory holding the given trigger files. */
function catalogue(files: Record<string, string>): string {
  const dir = join(root, `c${n++}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** A valid trigger file; `over` replaces whole top-level lines by key. */
function trigger(id: string, over: Record<string, string> = {}): string {
  const fields: Record<string, string> = {
    id: `id: ${id}`,
    technique: 'technique: T1059.004',
    name: 'name: "Command and Scripting Interpreter: Unix Shell"',
    tactic: 'tactic: execution',
    description: 'description: runs a shell',
    marker: `marker: bpfgate-${id}`,
    steps: 'steps: |\n  mkdir -p "/tmp/$BPFGATE_MARKER"\n  /bin/sh -c true "$BPFGATE_MARKER"',
    cleanup: 'cleanup: |\n  rm -rf "/tmp/$BPFGATE_MARKER"',
    hooks: 'hooks:\n  - kprobe:security_bprm_check\n  - lsm:bprm_check_security',
    expect: `expect:\n  - type: process_exec\n    argumentsContains: bpfgate-${id}`,
    ...over,
  };
  return `${Object.values(fields).join('\n')}\n`;
}

/** Load a catalogue that must fail, and return its InputError after checking its shape. */
async function loadError(dir: string): Promise<InputError> {
  const err = await loadTriggerCatalogue(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  const input = err as InputError;
  if (input.line !== undefined) expect(input.message.startsWith(`${input.file}:${input.line}:${input.column}: `)).toBe(true);
  return input;
}

describe('loading trigger files', () => {
  it('loads a user catalogue in file name order, with positions', async () => {
    const dir = catalogue({ 'b-two.yaml': trigger('b-two'), 'a-one.yml': trigger('a-one'), 'notes.txt': 'not a trigger' });
    const loaded = await loadTriggerCatalogue(dir);
    expect(loaded.map((t) => t.id)).toEqual(['a-one', 'b-two']);
    expect(loaded[0]?.file).toBe(join(dir, 'a-one.yml'));
    expect(loaded[0]?.source).toEqual({ file: join(dir, 'a-one.yml'), line: 1, column: 1 });
    expect(loaded[1]?.steps).toContain('$BPFGATE_MARKER');
    expect(loaded[1]?.expect).toEqual([{ type: 'process_exec', argumentsContains: 'bpfgate-b-two' }]);
  });

  it('loads files and directories given together, each file once, and checks them as one set', async () => {
    const a = catalogue({ 'mine-a.yaml': trigger('mine-a') });
    const b = catalogue({ 'mine-b.yaml': trigger('mine-b') });
    const loaded = await loadTriggerFiles([join(b, 'mine-b.yaml'), a, join(a, 'mine-a.yaml')]);
    expect(loaded.map((t) => t.id)).toEqual(['mine-b', 'mine-a']);
    // A user trigger that reuses a shipped marker is refused when loaded with the catalogue.
    const clash = catalogue({ 't1014-rootkit.yaml': readFileSync(join(TRIGGER_CATALOGUE_DIR, 't1014-rootkit.yaml'), 'utf8') });
    const err = await loadTriggerFiles([TRIGGER_CATALOGUE_DIR, clash]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('trigger-duplicate');
    expect((err as InputError).file).toBe(join(clash, 't1014-rootkit.yaml'));
  });

  it('refuses a file that is not YAML, at the line of the syntax error', async () => {
    const e = await loadError(catalogue({ 'bad.yaml': 'id: bad\nhooks: [kprobe:x\nsteps: |\n  true\n' }));
    expect(e.code).toBe('trigger-yaml');
    expect(e.line).toBe(3);
    expect(e.message).toContain('not valid YAML');
  });

  it('refuses an unknown field at its key, listing the known fields', async () => {
    const text = trigger('extra').replace('tactic: execution\n', 'tactic: execution\nseverity: high\n');
    const e = await loadError(catalogue({ 'extra.yaml': text }));
    expect(e.code).toBe('trigger-schema');
    expect([e.line, e.column]).toEqual([5, 1]);
    expect(e.message).toContain('severity: unknown field "severity"; expected one of: id, technique, name, tactic');
  });

  it('refuses a technique id that is not T#### or T####.###', async () => {
    const e = await loadError(catalogue({ 'tech.yaml': trigger('tech', { technique: 'technique: T1059.4' }) }));
    expect(e.code).toBe('trigger-schema');
    expect([e.line, e.column]).toEqual([2, 12]);
    expect(e.message).toContain('technique: expected a string matching ^T[0-9]{4}(\\.[0-9]{3})?$ (got "T1059.4")');
  });

  it('refuses a tactic that is not an ATT&CK tactic, naming the tactics', async () => {
    const e = await loadError(catalogue({ 'tac.yaml': trigger('tac', { tactic: 'tactic: stealth' }) }));
    expect(e.message).toContain('tactic: expected one of: reconnaissance, resource-development, initial-access');
    expect(e.message).toContain('(got "stealth")');
  });

  it('refuses a missing required field at the document', async () => {
    const e = await loadError(catalogue({ 'nocleanup.yaml': trigger('nocleanup', { cleanup: '' }) }));
    expect(e.code).toBe('trigger-schema');
    expect(e.message).toContain('missing required field "cleanup"');
  });

  it('refuses an id that differs from the file name', async () => {
    const e = await loadError(catalogue({ 'file-name.yaml': trigger('other-name') }));
    expect(e.code).toBe('trigger-invalid');
    expect([e.line, e.column]).toEqual([1, 5]);
    expect(e.message).toContain('id: expected "file-name": a trigger\'s id is its file name');
  });

  it('refuses steps that never use the marker', async () => {
    const text = trigger('nomark', { steps: 'steps: |\n  echo hello\n  true' });
    const e = await loadError(catalogue({ 'nomark.yaml': text }));
    expect(e.code).toBe('trigger-invalid');
    expect([e.line, e.column]).toEqual([7, 8]);
    expect(e.message).toContain('steps: expected the marker "bpfgate-nomark" (or $BPFGATE_MARKER) in the steps');
  });

  it('accepts the marker written literally in the steps', async () => {
    const text = trigger('literal', { steps: 'steps: |\n  /bin/sh -c true bpfgate-literal' });
    expect((await loadTriggerCatalogue(catalogue({ 'literal.yaml': text })))[0]?.marker).toBe('bpfgate-literal');
  });

  it('refuses a duplicate marker in another file, naming the first one', async () => {
    const dir = catalogue({ 'one.yaml': trigger('one'), 'two.yaml': trigger('two', { marker: 'marker: bpfgate-one' }) });
    const e = await loadError(dir);
    expect(e.code).toBe('trigger-duplicate');
    expect(e.file).toBe(join(dir, 'two.yaml'));
    expect([e.line, e.column]).toEqual([6, 9]);
    expect(e.message).toContain(`marker: expected a unique marker: "bpfgate-one" is also the marker of ${join(dir, 'one.yaml')}:6:9`);
  });

  it('refuses a marker that is part of another, since their events could not be told apart', async () => {
    const dir = catalogue({ 'aa.yaml': trigger('aa', { marker: 'marker: bpfgate-t1055-009' }), 'bb.yaml': trigger('bb', { marker: 'marker: bpfgate-t1055' }) });
    const e = await loadError(dir);
    expect(e.code).toBe('trigger-duplicate');
    expect(e.file).toBe(join(dir, 'bb.yaml'));
    expect(e.message).toContain('"bpfgate-t1055" and "bpfgate-t1055-009"');
  });

  it('refuses a hook hint of an unknown kind or with a malformed name', async () => {
    const kind = await loadError(catalogue({ 'k.yaml': trigger('k', { hooks: 'hooks:\n  - kprobe:tcp_connect\n  - fentry:tcp_connect' }) }));
    expect(kind.code).toBe('trigger-schema');
    expect(kind.line).toBe(14);
    const lsm = await loadError(catalogue({ 'l.yaml': trigger('l', { hooks: 'hooks:\n  - lsm:security_file_open' }) }));
    expect(lsm.code).toBe('trigger-invalid');
    expect([lsm.line, lsm.column]).toEqual([13, 5]);
    expect(lsm.message).toContain('hooks[0]: expected lsm:HOOK (the LSM hook name, e.g. lsm:file_open), without the security_ prefix');
    const tp = await loadError(catalogue({ 't.yaml': trigger('t', { hooks: 'hooks:\n  - tracepoint:sys_enter' }) }));
    expect(tp.message).toContain('hooks[0]: expected tracepoint:SUBSYSTEM/EVENT (got "tracepoint:sys_enter")');
  });

  it('refuses expectation fields that do not belong to the event type', async () => {
    const misplaced = await loadError(
      catalogue({ 'm.yaml': trigger('m', { expect: 'expect:\n  - type: process_exec\n    argumentsContains: bpfgate-m\n    function_name: tcp_connect' }) }),
    );
    expect(misplaced.code).toBe('trigger-invalid');
    expect([misplaced.line, misplaced.column]).toEqual([18, 5]);
    expect(misplaced.message).toContain('expect[0].function_name: a process_exec expectation has no field "function_name"; expected one of: type, binary, argumentsContains');
    const missing = await loadError(catalogue({ 'k.yaml': trigger('k', { expect: 'expect:\n  - type: process_kprobe\n    policy_name: p' }) }));
    expect(missing.message).toContain('expect[0]: missing required field "function_name" for a process_kprobe expectation');
    const bare = await loadError(catalogue({ 'b.yaml': trigger('b', { expect: 'expect:\n  - type: process_exec' }) }));
    expect(bare.message).toContain('expected binary or argumentsContains');
    const both = await loadError(
      catalogue({
        'p.yaml': trigger('p', { expect: 'expect:\n  - type: process_kprobe\n    function_name: fd_install\n    args:\n      - contains: a\n        equals: b' }),
      }),
    );
    expect(both.message).toContain('expect[0].args[0]: expected exactly one of: equals, contains');
    const unknownType = await loadError(catalogue({ 'u.yaml': trigger('u', { expect: 'expect:\n  - type: process_uprobe' }) }));
    expect(unknownType.code).toBe('trigger-schema');
    expect(unknownType.message).toContain('expect[0].type: expected one of: process_exec, process_kprobe, process_tracepoint, process_lsm');
  });

  it('refuses a directory without trigger files and a path that does not exist', async () => {
    const empty = await loadError(catalogue({ 'README.md': '# nothing' }));
    expect(empty.code).toBe('trigger-missing');
    expect(empty.line).toBeUndefined();
    const absent = await loadError(join(root, 'no-such-dir'));
    expect(absent.code).toBe('trigger-missing');
    expect(absent.message).toContain('expected a trigger file or directory');
  });
});

describe('hook hints', () => {
  it('parse into the kinds and names policies use', () => {
    expect(parseHookHint('kprobe:__sys_setuid')).toEqual({ kind: 'kprobe', name: '__sys_setuid' });
    expect(parseHookHint('tracepoint:raw_syscalls/sys_enter')).toEqual({ kind: 'tracepoint', name: 'raw_syscalls/sys_enter' });
    expect(parseHookHint('rawtp:sched/sched_process_exec')).toEqual({ kind: 'rawtp', name: 'sched/sched_process_exec' });
    expect(parseHookHint('uprobe:/bin/bash:readline')).toEqual({ kind: 'uprobe', name: '/bin/bash:readline' });
    expect(parseHookHint('usdt:/usr/bin/prog:provider:probe')).toEqual({ kind: 'usdt', name: '/usr/bin/prog:provider:probe' });
    expect(parseHookHint('kprobe')).toHaveProperty('problem');
    expect(parseHookHint('uprobe:bash:readline')).toHaveProperty('problem');
  });
});
