import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventFromJson, readExport, type TetragonEvent } from '../../suites/tetragon/events.js';
import { explainMismatch, findMatch, functionNameMatches, markerOf, matches } from '../../suites/tetragon/match.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { ExpectedEvent, ExpectedKprobe } from '../../suites/triggers/model.js';
import { EVENTS } from '../support/shared.js';

/** All events of one corpus export (path relative to EVENTS). */
function corpus(file: string): TetragonEvent[] {
  return readExport(readFileSync(join(EVENTS, file), 'utf8'), file).events;
}

function corpusEvent(file: string, line: number): TetragonEvent {
  const e = corpus(file).find((x) => x.line === line);
  if (!e) throw new Error(`${file} has no event on line ${line}`);
  return e;
}

/**
 * A real corpus event with some fields of its message replaced (or a new type built
 * around its process and parent): the corpus has no process_lsm or process_tracepoint,
 * and no arm64 event, so those are made from real x86_64 kprobe events.
 */
function variant(e: TetragonEvent, fields: Record<string, unknown>, type: string = e.type): TetragonEvent {
  const base = type === e.type ? e.body : { process: e.body.process, parent: e.body.parent };
  const { [e.type]: _replaced, ...envelope } = e.raw;
  return eventFromJson({ ...envelope, [type]: { ...base, ...fields } }, e.file, e.line);
}

const FILE_ACCESS = 'docs/en__docs__use-cases__filename-access.jsonl';
const MODULES = 'docs/en__docs__use-cases__host-system-changes__linux-kernel-modules.jsonl';
const SETID = 'docs/en__docs__use-cases__linux-process-credentials__syscalls-monitoring.jsonl';
const SETNS = 'docs/en__docs__use-cases__process-lifecycle__namespace-access.jsonl';
const CAPS = 'docs/en__docs__use-cases__security-profiles__record-linux-capabilities.jsonl';
const BOOK = 'security-observability-book/book-events.jsonl';

/** Written against the docs' security_file_permission event on /etc/passwd. */
const permission: ExpectedKprobe = {
  type: 'process_kprobe',
  function_name: 'security_file_permission',
  binary: '/bin/vi',
  argumentsContains: 'passwd',
  policy_name: 'file-monitoring',
  args: [
    { index: 0, path: 'file_arg.path', equals: '/etc/passwd' },
    { index: 1, path: 'int_arg', equals: 2 },
  ],
};

describe('matching one expectation against a real event', () => {
  const perm = corpusEvent(FILE_ACCESS, 1);

  it('matches an expectation written against a real docs process_kprobe event', () => {
    expect(explainMismatch(permission, perm)).toEqual([]);
    expect(matches(permission, perm)).toBe(true);
  });

  it('names the one field that differs when a single field of the expectation is changed', () => {
    const cases: [Partial<ExpectedKprobe>, string][] = [
      [{ binary: '/usr/bin/vi' }, 'binary: expected "/usr/bin/vi", got "/bin/vi"'],
      [{ argumentsContains: 'shadow' }, 'arguments: expected to contain "shadow", got "/etc/passwd"'],
      [{ policy_name: 'other' }, 'policy_name: expected "other", got "file-monitoring"'],
      [{ function_name: 'security_file_open' }, 'function_name: expected "security_file_open", got "security_file_permission"'],
      [
        { args: [{ index: 0, path: 'file_arg.path', equals: '/etc/shadow' }] },
        'args[0].file_arg.path: expected "/etc/shadow", got "/etc/passwd"',
      ],
      [{ args: [{ index: 1, path: 'int_arg', equals: 4 }] }, 'args[1].int_arg: expected 4, got 2'],
      [{ args: [{ index: 5, contains: 'x' }] }, 'args[5]: expected to contain "x", got no argument at index 5 (the event has 2)'],
    ];
    for (const [change, difference] of cases) {
      const expected = { ...permission, ...change };
      expect(explainMismatch(expected, perm), JSON.stringify(change)).toEqual([difference]);
      expect(matches(expected, perm)).toBe(false);
    }
  });

  it('reports only the type when the event is of another type', () => {
    const exec = corpusEvent('docs/en__docs__concepts__events.jsonl', 1);
    expect(explainMismatch(permission, exec)).toEqual(['type: expected process_kprobe, got process_exec']);
    expect(explainMismatch({ type: 'process_exec', binary: '/usr/bin/curl' }, exec)).toEqual([]);
  });

  it('says there is no process when a process predicate meets an event without one', () => {
    const bare = variant(perm, { process: undefined });
    expect(explainMismatch({ type: 'process_kprobe', function_name: 'security_file_permission', binary: '/bin/vi' }, bare)).toEqual([
      'binary: expected "/bin/vi", got (no process)',
    ]);
  });
});

describe('syscall names across architectures', () => {
  it('lets sys_NAME match the native x86_64 and arm64 entry points, and nothing else', () => {
    expect(functionNameMatches('sys_write', 'sys_write')).toBe(true);
    expect(functionNameMatches('sys_write', '__x64_sys_write')).toBe(true);
    expect(functionNameMatches('sys_write', '__arm64_sys_write')).toBe(true);
    expect(functionNameMatches('sys_write', '__ia32_sys_write')).toBe(false);
    expect(functionNameMatches('sys_write', '__arm64_compat_sys_write')).toBe(false);
    expect(functionNameMatches('sys_write', '__x64_sys_writev')).toBe(false);
    expect(functionNameMatches('sys_write', '__se_sys_write')).toBe(false);
    // A per-arch name is exact; the rule only widens the portable sys_ spelling.
    expect(functionNameMatches('__x64_sys_write', '__arm64_sys_write')).toBe(false);
    expect(functionNameMatches('write', '__x64_write')).toBe(false);
  });

  it('matches sys_setuid against the real __x64_sys_setuid event and an arm64 copy of it, not an ia32 one', () => {
    const setuid = corpusEvent(SETID, 2);
    const expected: ExpectedKprobe = { type: 'process_kprobe', function_name: 'sys_setuid', binary: '/bin/su', args: [{ index: 0, equals: 0 }] };
    expect(setuid.function_name).toBe('__x64_sys_setuid');
    expect(matches(expected, setuid)).toBe(true);
    expect(matches(expected, variant(setuid, { function_name: '__arm64_sys_setuid' }))).toBe(true);
    expect(explainMismatch(expected, variant(setuid, { function_name: '__ia32_sys_setuid' }))).toEqual([
      'function_name: expected "sys_setuid" (or "__x64_sys_setuid", "__arm64_sys_setuid"), got "__ia32_sys_setuid"',
    ]);
    expect(explainMismatch({ ...expected, function_name: 'sys_setgid' }, setuid)).toHaveLength(1);
  });
});

describe('argument predicates', () => {
  const kernelRead = corpusEvent(MODULES, 1);
  const moduleRequest = corpusEvent(MODULES, 3);
  const initModule = corpusEvent(MODULES, 2);
  const setns = corpusEvent(SETNS, 1);
  const write = corpusEvent(BOOK, 5);
  const read = corpus(BOOK).find((e) => e.function_name === '__x64_sys_read');
  const capable = corpusEvent(CAPS, 1);
  const kprobe = (fn: string, args: ExpectedKprobe['args']): ExpectedKprobe => ({ type: 'process_kprobe', function_name: fn, args });

  it('lets any argument satisfy a predicate without an index, and only the indexed one with it', () => {
    expect(matches(kprobe('sys_setns', [{ path: 'int_arg', equals: 134217728 }]), setns)).toBe(true);
    expect(explainMismatch(kprobe('sys_setns', [{ index: 0, path: 'int_arg', equals: 134217728 }]), setns)).toEqual([
      'args[0].int_arg: expected 134217728, got 3',
    ]);
    expect(explainMismatch(kprobe('sys_setns', [{ path: 'int_arg', equals: 7 }]), setns)).toEqual(['args[*].int_arg: expected 7, got 3, 134217728']);
  });

  it('takes the single value of an argument when there is no path', () => {
    expect(moduleRequest.args).toEqual([{ string_arg: 'fs-xfs' }]);
    expect(matches(kprobe('security_kernel_module_request', [{ equals: 'fs-xfs' }]), moduleRequest)).toBe(true);
    expect(matches(kprobe('security_kernel_module_request', [{ path: 'string_arg', equals: 'fs-xfs' }]), moduleRequest)).toBe(true);
    expect(matches(kprobe('security_kernel_read_file', [{ index: 1, equals: 2 }]), kernelRead)).toBe(true);
    // A file_arg's value is an object: it equals no text, but its JSON text contains the path.
    expect(matches(kprobe('security_kernel_read_file', [{ index: 0, equals: '/home/tixxdz/tetragon/contrib/tester-progs/kernel_module_hello.ko' }]), kernelRead)).toBe(false);
    expect(matches(kprobe('security_kernel_read_file', [{ contains: 'contrib/tester-progs/kernel_module_hello' }]), kernelRead)).toBe(true);
  });

  it('compares numbers with the strings protojson prints for 64-bit integers', () => {
    expect(read?.args?.[2]).toEqual({ size_arg: '65536' });
    expect(matches(kprobe('sys_read', [{ path: 'size_arg', equals: 65536 }]), read!)).toBe(true);
    expect(matches(kprobe('sys_read', [{ path: 'size_arg', equals: '65536' }]), read!)).toBe(true);
    expect(matches(kprobe('sys_read', [{ path: 'truncated_bytes_arg.orig_size', equals: 65536 }]), read!)).toBe(true);
    expect(matches(kprobe('sys_read', [{ path: 'size_arg', equals: 6553 }]), read!)).toBe(false);
    expect(matches(kprobe('security_kernel_read_file', [{ index: 1, path: 'int_arg', equals: '2' }]), kernelRead)).toBe(true);
    expect(matches(kprobe('cap_capable', [{ path: 'capability_arg.value', equals: '34' }]), capable)).toBe(true);
    expect(matches(kprobe('cap_capable', [{ path: 'capability_arg.name', equals: 'CAP_SYSLOG' }]), capable)).toBe(true);
    expect(matches(kprobe('cap_capable', [{ path: 'user_ns_arg.ns.is_host', equals: true }]), capable)).toBe(true);
  });

  it('looks for contains in the JSON text of a list, and indexes a list with a numeric segment', () => {
    expect(matches(kprobe('do_init_module', [{ path: 'module_arg.tainted', contains: 'TAINT_UNSIGNED_MODULE' }]), initModule)).toBe(true);
    expect(matches(kprobe('do_init_module', [{ path: 'module_arg.tainted.1', equals: 'TAINT_UNSIGNED_MODULE' }]), initModule)).toBe(true);
    expect(matches(kprobe('do_init_module', [{ path: 'module_arg.tainted.0', equals: 'TAINT_UNSIGNED_MODULE' }]), initModule)).toBe(false);
    expect(matches(kprobe('do_init_module', [{ path: 'module_arg.name.deeper', contains: 'k' }]), initModule)).toBe(false);
  });

  it('searches base64 bytes both as exported and decoded', () => {
    expect(matches(kprobe('sys_write', [{ path: 'bytes_arg', contains: 'daemon:x:2:2' }]), write)).toBe(true);
    expect(matches(kprobe('sys_write', [{ contains: 'elasticsearch:x:1000' }]), write)).toBe(true);
    expect(matches(kprobe('sys_write', [{ path: 'bytes_arg', contains: 'ZGFlbW9u' }]), write)).toBe(true);
    expect(matches(kprobe('sys_write', [{ path: 'bytes_arg', contains: 'root:x:0:0' }]), write)).toBe(false);
  });

  it('treats a predicate with neither equals nor contains as presence', () => {
    const perm = corpusEvent(FILE_ACCESS, 1);
    expect(matches(kprobe('security_file_permission', [{ path: 'file_arg.permission' }]), perm)).toBe(true);
    expect(explainMismatch(kprobe('security_file_permission', [{ path: 'file_arg.mount' }]), perm)).toEqual([
      'args[*].file_arg.mount: expected a value, got (absent), (absent)',
    ]);
  });

  it('matches tracepoint and LSM expectations on their own fields', () => {
    const perm = corpusEvent(FILE_ACCESS, 1);
    const lsm = variant(perm, { function_name: 'file_open', policy_name: 'lsm-files', args: [{ file_arg: { path: '/etc/shadow' } }] }, 'process_lsm');
    const expectedLsm: ExpectedEvent = { type: 'process_lsm', function_name: 'file_open', binary: '/bin/vi', args: [{ path: 'file_arg.path', equals: '/etc/shadow' }] };
    expect(matches(expectedLsm, lsm)).toBe(true);
    expect(explainMismatch({ ...expectedLsm, function_name: 'file_permission' }, lsm)).toEqual([
      'function_name: expected "file_permission", got "file_open"',
    ]);
    const tp = variant(perm, { subsys: 'raw_syscalls', event: 'sys_enter', args: [{ long_arg: '59' }] }, 'process_tracepoint');
    const expectedTp: ExpectedEvent = { type: 'process_tracepoint', subsys: 'raw_syscalls', event: 'sys_enter', args: [{ index: 0, equals: 59 }] };
    expect(matches(expectedTp, tp)).toBe(true);
    expect(explainMismatch({ ...expectedTp, subsys: 'syscalls', event: 'sys_enter_execve' }, tp)).toEqual([
      'subsys: expected "syscalls", got "raw_syscalls"',
      'event: expected "sys_enter_execve", got "sys_enter"',
    ]);
  });
});

describe('finding the event an expectation holds for', () => {
  const modules = corpus(MODULES);
  const kprobe = (over: Partial<ExpectedKprobe>): ExpectedKprobe => ({ type: 'process_kprobe', function_name: 'security_kernel_read_file', ...over });

  it('returns the first matching event', () => {
    const found = findMatch(kprobe({}), modules);
    expect('matched' in found && found.matched.line).toBe(1);
    const modprobe = findMatch(kprobe({ binary: '/sbin/modprobe' }), modules);
    expect('matched' in modprobe && modprobe.matched.line).toBe(5);
  });

  it('returns the latest of the equally near events with their differences when none matches', () => {
    const found = findMatch(kprobe({ binary: '/usr/bin/kmod' }), modules);
    expect(found).toEqual({ nearest: modules.find((e) => e.line === 5), differences: ['binary: expected "/usr/bin/kmod", got "/sbin/modprobe"'] });
  });

  it('prefers the event with fewer differences over a later one', () => {
    const expected = kprobe({ function_name: 'do_init_module', binary: '/usr/sbin/insmod', args: [{ path: 'module_arg.name', equals: 'xfs' }] });
    const found = findMatch(expected, modules);
    expect('nearest' in found && found.nearest.line).toBe(2);
    expect('nearest' in found && found.differences).toEqual(['args[*].module_arg.name: expected "xfs", got "kernel_module_hello"']);
  });

  it('answers none when no event has the expected type', () => {
    expect(findMatch({ type: 'process_tracepoint', subsys: 'raw_syscalls', event: 'sys_enter' }, modules)).toEqual({ none: true });
    expect(findMatch(kprobe({}), [])).toEqual({ none: true });
  });

  it('evaluates every expectation of the shipped trigger catalogue against every corpus event', async () => {
    const triggers = await loadTriggerCatalogue();
    const events = [...corpus(BOOK), ...modules, ...corpus(FILE_ACCESS), ...corpus(SETID), ...corpus(SETNS), ...corpus(CAPS)];
    let evaluated = 0;
    for (const t of triggers) {
      for (const expected of t.expect) {
        for (const e of events) {
          const differences = explainMismatch(expected, e);
          expect(differences.length === 0).toBe(matches(expected, e));
          evaluated++;
        }
        // The corpus predates bpfgate: no trigger marker can be in it.
        const found = findMatch(expected, events);
        expect('matched' in found && expected.argumentsContains !== undefined).toBe(false);
      }
    }
    expect(evaluated).toBeGreaterThan(1000);
  });
});

describe('tying events back to triggers', () => {
  it('finds a marker in the process arguments, the parent, or an argument string', () => {
    const curl = corpusEvent('docs/en__docs__concepts__events.jsonl', 1);
    expect(markerOf(curl, ['bpfgate-t1', 'ebpf.io/applications'])).toBe('ebpf.io/applications');
    const rmmod = corpusEvent(MODULES, 7);
    expect(rmmod.process?.arguments).toBe('kernel_module_hello');
    expect(markerOf(rmmod, ['rmmod kernel_module_hello'])).toBe('rmmod kernel_module_hello');
    const kernelRead = corpusEvent(MODULES, 5);
    expect(markerOf(kernelRead, ['6.2.0-32-generic'])).toBe('6.2.0-32-generic');
    const su = corpusEvent('docs/en__docs__use-cases__linux-process-credentials__monitor-changes-at-kernel.jsonl', 1);
    expect(markerOf(su, ['tmp/su'])).toBe('tmp/su');
  });

  it('finds a marker inside decoded bytes, and none when no marker appears', () => {
    const write = corpusEvent(BOOK, 5);
    expect(markerOf(write, ['elasticsearch:x:1000'])).toBe('elasticsearch:x:1000');
    expect(markerOf(write, ['bpfgate-t1059-004-unix-shell'])).toBeUndefined();
    expect(markerOf(corpusEvent('docs/en__docs__concepts__cgroup-rate.jsonl', 1), ['session'])).toBeUndefined();
  });

});
