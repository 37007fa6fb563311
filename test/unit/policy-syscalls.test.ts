import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import { parseDocuments } from '../../policy/load.js';
import { hooksAndNeeds } from '../../policy/hooks.js';
import type { Policy } from '../../policy/model.js';
import {
  SYSCALL_TABLES,
  hasSyscall,
  portabilityFindings,
  resolveEnforcerCall,
  resolveKprobeCall,
  resolvePlainListValue,
  resolveSyscallListValue,
  syscallNumber,
} from '../../policy/syscalls.js';
import { EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-syscalls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEADERS = ['/usr/include/x86_64-linux-gnu/asm/unistd_64.h', '/usr/include/asm-generic/unistd.h'];
const canRegenerate = HEADERS.every(existsSync) && existsSync('/usr/bin/cc');

describe('the syscall tables', () => {
  it('record where they come from: the uapi headers of linux-libc-dev', () => {
    expect(SYSCALL_TABLES.package.name).toBe('linux-libc-dev');
    expect(SYSCALL_TABLES.package.version).toMatch(/^\d+\.\d+/);
    expect(SYSCALL_TABLES.sources).toEqual({
      x86_64: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h',
      i386: '/usr/include/x86_64-linux-gnu/asm/unistd_32.h',
      arm64: '/usr/include/asm-generic/unistd.h',
    });
  });

  it('give arm64 only the *at forms of the legacy path syscalls', () => {
    for (const legacy of ['open', 'stat', 'lstat', 'dup2', 'fork', 'vfork', 'chmod', 'chown', 'mkdir', 'rmdir', 'rename', 'unlink', 'link', 'symlink', 'readlink', 'access', 'creat', 'poll', 'select', 'pipe']) {
      expect.soft(hasSyscall('arm64', legacy), legacy).toBe(false);
      expect.soft(hasSyscall('x86_64', legacy), legacy).toBe(true);
    }
    expect([syscallNumber('arm64', 'openat'), syscallNumber('arm64', 'dup3'), syscallNumber('arm64', 'renameat')]).toEqual([56, 24, 38]);
    expect([syscallNumber('arm64', 'newfstatat'), syscallNumber('arm64', 'clone3'), syscallNumber('arm64', 'memfd_secret')]).toEqual([79, 435, 447]);
    expect([syscallNumber('x86_64', 'read'), syscallNumber('x86_64', 'openat'), syscallNumber('i386', 'open')]).toEqual([0, 257, 5]);
  });

  it.skipIf(!canRegenerate)('are what the committed generator makes of the installed headers (needs cc and linux-libc-dev)', () => {
    const out = join(dir, 'syscalls.json');
    execFileSync('node', [join(PROJECT_ROOT, 'scripts', 'gen-syscall-tables.mjs'), '--out', out], { encoding: 'utf8' });
    const committed = JSON.parse(readFileSync(join(PROJECT_ROOT, 'policy', 'data', 'syscalls.json'), 'utf8')) as { package: { version: string } };
    const fresh = JSON.parse(readFileSync(out, 'utf8')) as { package: { version: string } };
    // A machine with another linux-libc-dev may differ; on the machine that generated them, they match.
    if (fresh.package.version === committed.package.version) expect(fresh).toEqual(committed);
    else expect(Object.keys(fresh)).toEqual(Object.keys(committed));
  });
});

describe('resolving syscall symbols per arch, as Tetragon does', () => {
  it('adds the arch prefix to a syscall: true call', () => {
    expect(resolveKprobeCall('sys_setuid', true, 'x86_64')).toEqual({ symbol: '__x64_sys_setuid' });
    expect(resolveKprobeCall('sys_setuid', true, 'arm64')).toEqual({ symbol: '__arm64_sys_setuid' });
  });

  it('keeps an arch-prefixed call as written, so it cannot exist on the other arch', () => {
    expect(resolveKprobeCall('__x64_sys_write', true, 'x86_64')).toEqual({ symbol: '__x64_sys_write' });
    expect(resolveKprobeCall('__x64_sys_write', true, 'arm64')).toEqual({ missing: expect.stringContaining('x86_64 symbol') });
    expect(resolveKprobeCall('__arm64_sys_write', true, 'x86_64')).toEqual({ missing: expect.stringContaining('arm64 symbol') });
    // The same holds without syscall: true: the name is the name.
    expect(resolveKprobeCall('__x64_sys_write', false, 'arm64')).toHaveProperty('missing');
  });

  it('treats 32-bit entry points as belonging to their 64-bit arch', () => {
    expect(resolveKprobeCall('__ia32_sys_setuid', true, 'x86_64')).toEqual({ symbol: '__ia32_sys_setuid' });
    expect(resolveKprobeCall('__ia32_sys_setuid', true, 'arm64')).toHaveProperty('missing');
    expect(resolveKprobeCall('__arm64_compat_sys_openat', true, 'arm64')).toEqual({ symbol: '__arm64_compat_sys_openat' });
    expect(resolveKprobeCall('__arm64_compat_sys_openat', true, 'x86_64')).toHaveProperty('missing');
  });

  it('knows that a syscall one arch lacks has no symbol there', () => {
    expect(resolveKprobeCall('sys_open', true, 'x86_64')).toEqual({ symbol: '__x64_sys_open' });
    expect(resolveKprobeCall('sys_open', true, 'arm64')).toEqual({ missing: 'arm64 has no open syscall (x86_64 has it): nothing calls __arm64_sys_open on arm64' });
    expect(resolveKprobeCall('__arm64_sys_open', true, 'arm64')).toHaveProperty('missing');
  });

  it('refuses a plain name with syscall: true, which Tetragon would prefix into a non-symbol', () => {
    expect(resolveKprobeCall('setuid', true, 'x86_64')).toEqual({ missing: expect.stringContaining('__x64_setuid, which is not a syscall entry point') });
    expect(resolveKprobeCall('__x64_connect', true, 'x86_64')).toEqual({ missing: expect.stringContaining('not a syscall entry point') });
  });

  it('leaves names that no table knows to the kernel, rather than guessing', () => {
    // umount2's entry point is sys_umount: no table lists "umount", and that is not a reason to fail it.
    expect(resolveKprobeCall('sys_umount', true, 'arm64')).toEqual({ symbol: '__arm64_sys_umount' });
    expect(resolveKprobeCall('sys_umount', true, 'x86_64')).toEqual({ symbol: '__x64_sys_umount' });
    expect(resolveKprobeCall('tcp_connect', false, 'arm64')).toEqual({ symbol: 'tcp_connect' });
  });

  it('finds no plain sys_NAME of a syscall under syscall: false: both arches build syscalls behind wrappers', () => {
    expect(resolveKprobeCall('sys_execve', false, 'x86_64')).toEqual({ missing: expect.stringContaining('x86_64 has only __x64_sys_execve') });
    expect(resolveKprobeCall('sys_execve', false, 'arm64')).toEqual({ missing: expect.stringContaining('write syscall: true') });
    // A sys_ name neither table knows is left to the kernel lane.
    expect(resolveKprobeCall('sys_ni_syscall', false, 'x86_64')).toEqual({ symbol: 'sys_ni_syscall' });
  });

  it('lands a plain list\'s sys_ value on the wrapper under syscall: true (the agent\'s prefix retry), and looks it up as written otherwise', () => {
    expect(resolvePlainListValue('sys_getcwd', true, 'x86_64')).toEqual({ symbol: '__x64_sys_getcwd' });
    expect(resolvePlainListValue('sys_open', true, 'arm64')).toHaveProperty('missing');
    expect(resolvePlainListValue('tcp_connect', true, 'arm64')).toEqual({ symbol: 'tcp_connect' });
    expect(resolvePlainListValue('sys_getcwd', false, 'x86_64')).toHaveProperty('missing');
  });

  it('resolves syscall list values by their ABI', () => {
    expect(resolveSyscallListValue('sys_dup', 'arm64')).toEqual({ symbol: '__arm64_sys_dup' });
    expect(resolveSyscallListValue('i386/sys_dup', 'x86_64')).toEqual({ symbol: '__ia32_sys_dup' });
    expect(resolveSyscallListValue('i386/sys_dup', 'arm64')).toHaveProperty('missing');
    expect(resolveSyscallListValue('arm32/sys_dup', 'arm64')).toEqual({ symbol: '__arm64_sys_dup' });
    expect(resolveSyscallListValue('x64/sys_dup', 'x86_64')).toEqual({ symbol: '__x64_sys_dup' });
    // An x86_64 prefix fits both x86_64 ABIs (Tetragon's validateABI), and the ABI picks the prefix.
    expect(resolveSyscallListValue('i386/__x64_sys_dup', 'x86_64')).toEqual({ symbol: '__ia32_sys_dup' });
    expect(resolveSyscallListValue('arm64/__x64_sys_dup', 'arm64')).toEqual({ missing: expect.stringContaining('does not belong to ABI arm64') });
    expect(resolveSyscallListValue('i386/__arm64_sys_dup', 'x86_64')).toEqual({ missing: expect.stringContaining('does not belong to ABI i386') });
    expect(resolveSyscallListValue('setuid', 'x86_64')).toEqual({ missing: expect.stringContaining('sys_NAME') });
  });

  it('resolves enforcer calls: syscalls get the prefix, security_ functions stay, others are refused', () => {
    expect(resolveEnforcerCall('sys_dup', 'arm64')).toEqual({ symbol: '__arm64_sys_dup' });
    expect(resolveEnforcerCall('security_file_open', 'arm64')).toEqual({ symbol: 'security_file_open' });
    expect(resolveEnforcerCall('tcp_connect', 'x86_64')).toEqual({ missing: expect.stringContaining('only syscalls and security_*') });
  });
});

describe('portability findings', () => {
  function policyOf(spec: string): Policy {
    const text = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n${spec}`;
    const [doc] = parseDocuments('p.yaml', text);
    const { hooks, needs } = hooksAndNeeds(doc!);
    return { kind: 'TracingPolicy', name: 'p', source: { file: 'p.yaml', line: 1 }, origin: { root: '.', relPath: 'p.yaml' }, docIndex: 0, doc: doc!.value as Record<string, unknown>, hooks, needs };
  }

  it('report a hard-coded __x64_sys_ call on arm64 and an __arm64_sys_ call on x86_64, at the call line', () => {
    const policy = policyOf('  kprobes:\n  - call: __x64_sys_write\n    syscall: true\n  - call: __arm64_sys_read\n    syscall: true\n');
    expect(portabilityFindings(policy, ['x86_64', 'arm64'])).toEqual([
      expect.objectContaining({ arch: 'arm64', reason: 'symbol-missing', hook: 'kprobe:__x64_sys_write', path: 'spec.kprobes[0].call', source: { file: 'p.yaml', line: 7, column: 11 } }),
      expect.objectContaining({ arch: 'x86_64', reason: 'symbol-missing', hook: 'kprobe:__arm64_sys_read', source: { file: 'p.yaml', line: 9, column: 11 } }),
    ]);
    // Only the arches asked for are reported.
    expect(portabilityFindings(policy, ['arm64']).map((f) => f.arch)).toEqual(['arm64']);
  });

  it('report a syscall only one arch has, and nothing for generated lists or non-kprobe hooks', () => {
    const policy = policyOf('  lists:\n  - name: all\n    type: generated_syscalls\n  kprobes:\n  - call: sys_open\n    syscall: true\n  - call: list:all\n  lsmhooks:\n  - hook: file_open\n');
    expect(portabilityFindings(policy, ['x86_64', 'arm64']).map((f) => [f.arch, f.hook])).toEqual([['arm64', 'kprobe:sys_open']]);
  });

  it('report the x86-only symbols of the book policies on arm64 and nothing on x86_64', async () => {
    const { policies } = await readPolicies([join(EXTRA, 'docs')]);
    const findings = policies.flatMap((p) => portabilityFindings(p, ['x86_64', 'arm64']));
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((f) => f.arch === 'arm64' && /^kprobe:__x64_sys_/.test(f.hook))).toBe(true);
  });

  it('find the arm64 gaps of the example policies: dup2 and the ia32 entry point', async () => {
    const { policies } = await readPolicies([EXAMPLES]);
    const findings = policies.flatMap((p) => portabilityFindings(p, ['x86_64', 'arm64']).map((f) => `${p.name} ${f.arch} ${f.hook}`));
    expect(findings.sort()).toEqual([
      'kill-syscalls arm64 kprobe:__ia32_sys_dup',
      'kill-syscalls arm64 kprobe:sys_dup2',
      'list-syscalls arm64 kprobe:sys_dup2',
    ]);
  });
});
