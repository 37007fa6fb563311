import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../core/errors.js';
import {
  EVENT_TYPES,
  eventFromJson,
  parseExportLine,
  readExport,
  readExportFile,
  summarizeEvent,
  type TetragonEvent,
} from '../../suites/tetragon/events.js';
import { EVENTS } from '../support/shared.js';

const DOCS = join(EVENTS, 'docs');
const BOOK = join(EVENTS, 'security-observability-book');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)]));
}

/** Event files: JSON lines, except the book's raw/ folder of pretty-printed single documents. */
const eventFiles = walk(EVENTS).filter((f) => f.endsWith('.json') || f.endsWith('.jsonl'));
const isDocument = (f: string): boolean => relative(EVENTS, f).split(sep).includes('raw');

function readCorpusFile(file: string): TetragonEvent[] {
  const text = readFileSync(file, 'utf8');
  return isDocument(file) ? [eventFromJson(JSON.parse(text), file, 1)] : readExport(text, file).events;
}

/** One real line of the corpus, by file (relative to EVENTS) and 1-based line. */
function corpusLine(file: string, line: number): string {
  const text = readFileSync(join(EVENTS, file), 'utf8').split('\n')[line - 1];
  if (text === undefined) throw new Error(`${file} has no line ${line}`);
  return text;
}

function corpusEvent(file: string, line: number): TetragonEvent {
  return parseExportLine(corpusLine(file, line), file, line);
}

/** The InputError a call throws (failing the test when it does not throw one). */
function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError, nothing was thrown');
}

/** INDEX.tsv rows (header dropped) split on tabs. */
function indexRows(dir: string): string[][] {
  return readFileSync(join(dir, 'INDEX.tsv'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t'));
}

describe('reading the real corpus exports', () => {
  it('parses every event file under the corpus events folder without a problem', () => {
    expect(eventFiles.length).toBeGreaterThanOrEqual(50);
    for (const file of eventFiles.filter((f) => !isDocument(f))) {
      const read = readExport(readFileSync(file, 'utf8'), file, { tolerant: true });
      expect(read.problems, file).toEqual([]);
      expect(read.tornLastLine).toBe(false);
      expect(read.events.length, file).toBeGreaterThan(0);
    }
    for (const file of eventFiles.filter(isDocument)) expect(readCorpusFile(file)).toHaveLength(1);
  });

  it('counts the event types that SOURCES.md states for each source', () => {
    const count = (files: string[]): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const e of files.flatMap(readCorpusFile)) out[e.type] = (out[e.type] ?? 0) + 1;
      return out;
    };
    const jsonl = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.jsonl')).map((f) => join(dir, f));
    expect(count(jsonl(DOCS))).toEqual({ process_kprobe: 13, process_exec: 4, process_exit: 1, process_throttle: 2 });
    expect(count([join(EVENTS, 'testdata', 'events.json')])).toEqual({ process_exec: 3 });
    const book = count([join(BOOK, 'book-events.jsonl')]);
    expect(book).toMatchObject({ process_exec: 18, process_exit: 9, process_kprobe: 2 });
    expect((book.process_connect ?? 0) + (book.process_close ?? 0) + (book.process_listen ?? 0)).toBe(11);
    expect(count(eventFiles.filter(isDocument))).toEqual(book);
  });

  it('gives every docs line the event type its INDEX.tsv row names, in order', () => {
    const byFile = new Map<string, string[]>();
    for (const [file, , , type] of indexRows(DOCS)) byFile.set(file!, [...(byFile.get(file!) ?? []), type!]);
    expect(byFile.size).toBeGreaterThan(5);
    for (const [file, types] of byFile) {
      expect(readCorpusFile(join(DOCS, file)).map((e) => e.type), file).toEqual(types);
    }
  });

  it('gives every book line the type INDEX.tsv names, and the same event as its raw pretty-printed document', () => {
    const lines = readExport(readFileSync(join(BOOK, 'book-events.jsonl'), 'utf8'), 'book-events.jsonl').events;
    const rows = indexRows(BOOK);
    expect(rows).toHaveLength(lines.length);
    for (const [line, source, type] of rows) {
      const fromLine = lines.find((e) => e.line === Number(line));
      expect(fromLine?.type, `line ${line}`).toBe(type);
      const [document] = readCorpusFile(join(BOOK, 'raw', source!));
      expect(document?.type).toBe(type);
      expect(document?.raw).toEqual(fromLine?.raw);
    }
  });

  it('reads a docs process_kprobe with its function, arguments, return, action, policy and process', () => {
    const e = corpusEvent('docs/en__docs__use-cases__filename-access.jsonl', 1);
    expect(e).toMatchObject({
      type: 'process_kprobe',
      known: true,
      function_name: 'security_file_permission',
      args: [{ file_arg: { path: '/etc/passwd', permission: '-rw-r--r--' } }, { int_arg: 2 }],
      return: { int_arg: 0 },
      action: 'KPROBE_ACTION_POST',
      return_action: 'KPROBE_ACTION_POST',
      policy_name: 'file-monitoring',
      file: 'docs/en__docs__use-cases__filename-access.jsonl',
      line: 1,
    });
    expect(e.process).toMatchObject({ binary: '/bin/vi', arguments: '/etc/passwd', pid: 64746, uid: 0 });
    expect(e.process?.exec_id).toMatch(/^[A-Za-z0-9+/=]{20,}$/);
    expect(e.process?.pod).toMatchObject({ namespace: 'default', name: 'file-access', container: { name: 'file-access' } });
    expect(e.parent).toMatchObject({ binary: '/bin/sh', arguments: '' });
    expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(e.body).toBe(e.raw.process_kprobe);
  });

  it('reads the arch-specific syscall names and integer arguments as exported', () => {
    const [setgid, setuid] = readCorpusFile(join(DOCS, 'en__docs__use-cases__linux-process-credentials__syscalls-monitoring.jsonl'));
    expect(setgid).toMatchObject({ function_name: '__x64_sys_setgid', args: [{ int_arg: 0 }] });
    expect(setuid).toMatchObject({ function_name: '__x64_sys_setuid', args: [{ int_arg: 0 }] });
    const setns = corpusEvent('docs/en__docs__use-cases__process-lifecycle__namespace-access.jsonl', 1);
    expect(setns).toMatchObject({ function_name: '__x64_sys_setns', args: [{ int_arg: 3 }, { int_arg: 134217728 }], policy_name: 'namespace-access' });
  });

  it('reads an absent node_name as empty, and the envelope time when present', () => {
    const e = corpusEvent('docs/en__docs__use-cases__host-system-changes__linux-kernel-modules.jsonl', 1);
    expect(e.raw).not.toHaveProperty('node_name');
    expect(e.node_name).toBe('');
    expect(e.time).toBe('2023-08-30T11:01:22.847554295Z');
    expect(corpusEvent('docs/en__docs__use-cases__host-system-changes__linux-kernel-modules.jsonl', 3).node_name).toBe('kind-control-plane');
  });

  it('reads process_exit, process_throttle and a process with no pod', () => {
    const exit = corpusEvent('docs/en__docs__use-cases__process-lifecycle__process-execution.jsonl', 2);
    expect(exit).toMatchObject({ type: 'process_exit', process: { binary: '/usr/bin/whoami', arguments: '--version' } });
    const throttle = corpusEvent('docs/en__docs__concepts__cgroup-rate.jsonl', 1);
    expect(throttle).toMatchObject({ type: 'process_throttle', throttle: 'THROTTLE_START', cgroup: 'session-429.scope' });
    expect(throttle.process).toBeUndefined();
    const insmod = corpusEvent('docs/en__docs__use-cases__host-system-changes__linux-kernel-modules.jsonl', 1);
    expect(insmod.process?.binary).toBe('/usr/sbin/insmod');
    expect(insmod.process?.pod).toBeUndefined();
  });

  it('keeps the book process_connect as an unknown type with its raw message and its process', () => {
    const e = corpusEvent('security-observability-book/book-events.jsonl', 2);
    expect(e.type).toBe('process_connect');
    expect(e.known).toBe(false);
    expect(EVENT_TYPES as readonly string[]).not.toContain('process_connect');
    expect(e.body).toMatchObject({ destination_ip: '142.250.180.196', destination_port: 80, protocol: 'TCP' });
    expect(e.process?.binary).toBe('/usr/bin/curl');
    expect(e.function_name).toBeUndefined();
    expect(e.args).toBeUndefined();
  });

  it('reads the book kprobe with base64 bytes and a uint64 size printed as a string', () => {
    const e = corpusEvent('security-observability-book/book-events.jsonl', 5);
    expect(e.function_name).toBe('__x64_sys_write');
    expect(e.args?.[0]).toEqual({ file_arg: { path: 'etc/passwd' } });
    expect(Buffer.from(String(e.args?.[1]?.bytes_arg), 'base64').toString()).toContain('daemon:x:2:2');
    expect(e.args?.[2]).toEqual({ size_arg: '627' });
  });
});

describe('bad lines in an export', () => {
  const good = corpusLine('docs/en__docs__use-cases__filename-access.jsonl', 1);
  const exec = corpusLine('docs/en__docs__concepts__events.jsonl', 1);

  it('names the file, the line and the column of a line that is not JSON', () => {
    const err = inputError(() => readExport(`${good}\n{"process_exec":1 x}\n${exec}\n`, 'export.json'));
    expect(err.file).toBe('export.json');
    expect(err.line).toBe(2);
    expect(err.column).toBe(19);
    expect(err.code).toBe('export-invalid');
    expect(err.message).toMatch(/^export\.json:2:19: expected a JSON object \(one GetEventsResponse\), got text that is not JSON/);
  });

  it('says which event keys were expected when a line has none', () => {
    const err = inputError(() => readExport(`${good}\n{"node_name":"vm","time":"2024-01-01T00:00:00Z"}\n`, 'export.json'));
    expect(err.line).toBe(2);
    expect(err.message).toContain('expected an event key (one of process_exec, process_exit, process_kprobe');
    expect(err.message).toContain('found node_name, time');
  });

  it('refuses a JSON value that is not an object, an empty object and two event keys', () => {
    expect(inputError(() => parseExportLine('[1,2]', 'f', 7)).message).toBe('f:7:1: expected a JSON object (one GetEventsResponse), got an array');
    expect(inputError(() => parseExportLine('{}', 'f', 1)).message).toContain('found an empty object');
    expect(inputError(() => parseExportLine('{"process_exec":{},"process_exit":{}}', 'f', 1)).message).toContain(
      'expected exactly one event key, found process_exec, process_exit',
    );
    expect(inputError(() => parseExportLine('{"process_foo":{},"process_bar":{}}', 'f', 1)).message).toContain('found process_foo, process_bar');
    expect(inputError(() => parseExportLine('   ', 'f', 3)).message).toContain('got an empty line');
  });

  it('names the field whose JSON type is not the proto type', () => {
    expect(inputError(() => parseExportLine('{"process_exec":"x"}', 'f', 1)).message).toContain('process_exec: expected an object, got a string');
    expect(inputError(() => parseExportLine('{"process_kprobe":{"function_name":5}}', 'f', 1)).message).toContain(
      'process_kprobe.function_name: expected a string, got a number',
    );
    expect(inputError(() => parseExportLine('{"process_kprobe":{"args":{"int_arg":1}}}', 'f', 1)).message).toContain(
      'process_kprobe.args: expected a list, got an object',
    );
    expect(inputError(() => parseExportLine('{"process_kprobe":{"args":[1]}}', 'f', 1)).message).toContain('process_kprobe.args[0]: expected an object');
    expect(inputError(() => parseExportLine('{"process_exec":{"process":{"pid":"x"}}}', 'f', 1)).message).toContain(
      'process_exec.process.pid: expected an integer',
    );
  });

  it('chooses the one known event key beside unknown top-level fields', () => {
    const line = JSON.stringify({ ...JSON.parse(exec), future_field: { x: 1 } });
    expect(parseExportLine(line, 'f', 1).type).toBe('process_exec');
  });

  it('drops the process of an unknown type when it does not have the shape of a Process', () => {
    const e = parseExportLine('{"process_connect":{"process":"curl"}}', 'f', 1);
    expect(e).toMatchObject({ type: 'process_connect', known: false });
    expect(e.process).toBeUndefined();
  });

  it('reports a torn last line in strict mode, and collects it in tolerant mode', () => {
    const torn = good.slice(0, Math.floor(good.length / 2));
    const text = `${good}\n${exec}\n${torn}`;
    const err = inputError(() => readExport(text, 'export.json'));
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/^export\.json:3:\d+: torn last line \(no newline at the end/);

    const read = readExport(text, 'export.json', { tolerant: true });
    expect(read.events.map((e) => e.type)).toEqual(['process_kprobe', 'process_exec']);
    expect(read.tornLastLine).toBe(true);
    expect(read.problems).toHaveLength(1);
    expect(read.problems[0]?.line).toBe(3);
  });

  it('collects every bad line in tolerant mode and calls only a cut-short last line torn', () => {
    const text = `not json\n${good}\n\n{"time":"t"}\n${exec}\n{"process_exec":\n`;
    const read = readExport(text, 'export.json', { tolerant: true });
    expect(read.events.map((e) => [e.type, e.line])).toEqual([
      ['process_kprobe', 2],
      ['process_exec', 5],
    ]);
    expect(read.problems.map((p) => p.line)).toEqual([1, 4, 6]);
    expect(read.problems.every((p) => p.file === 'export.json')).toBe(true);
    expect(read.tornLastLine).toBe(false);
    // Complete JSON with no newline after it was not cut short: a bad line, not a torn one.
    const whole = readExport(`${good}\n{"time":"t"}`, 'export.json', { tolerant: true });
    expect(whole.problems.map((p) => p.line)).toEqual([2]);
    expect(whole.problems[0]?.message).not.toContain('torn');
    expect(whole.tornLastLine).toBe(false);
  });

  it('skips blank lines and CRLF endings while keeping the real line numbers', () => {
    const read = readExport(`\r\n${good}\r\n\r\n${exec}\r\n`, 'win.json');
    expect(read.events.map((e) => e.line)).toEqual([2, 4]);
    expect(readExport('', 'empty.json').events).toEqual([]);
  });

  it('reads an export file from disk and turns a missing file into an InputError', async () => {
    const file = join(DOCS, 'en__docs__use-cases__host-system-changes__linux-kernel-modules.jsonl');
    const read = await readExportFile(file);
    expect(read.events).toHaveLength(7);
    expect(read.events[6]?.file).toBe(file);
    const err = await readExportFile(join(EVENTS, 'no-such-export.json')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toContain('cannot read the Tetragon export');
  });
});

describe('one-line summaries for evidence', () => {
  it('says the type, the function, the process, the arguments and the action', () => {
    const e = corpusEvent('security-observability-book/book-events.jsonl', 5);
    expect(summarizeEvent(e)).toBe(
      'process_kprobe __x64_sys_write by /usr/bin/vi "/etc/passwd" pod=tenant-jobs/elasticsearch-56f8fc6988-sh8rm ["etc/passwd", <627 bytes>, "627"] action=POST',
    );
    const perm = corpusEvent('docs/en__docs__use-cases__filename-access.jsonl', 1);
    expect(summarizeEvent(perm)).toContain('["/etc/passwd", 2] return=0 policy=file-monitoring action=POST');
  });

  it('keeps every corpus event to one line of bounded length that starts with its type', () => {
    for (const e of eventFiles.flatMap(readCorpusFile)) {
      const s = summarizeEvent(e);
      expect(s.startsWith(e.type)).toBe(true);
      expect(s).not.toMatch(/\n/);
      expect(s.length).toBeLessThanOrEqual(400);
    }
  });
});
