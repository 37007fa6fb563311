#!/usr/bin/env node
/**
 * Generates policy/data/syscalls.json: syscall name -> number per ABI, read from the
 * kernel's own uapi headers as Debian's linux-libc-dev installs them on this machine.
 *
 * - x86_64 from asm/unistd_64.h, i386 (the IA32 emulation ABI of x86_64) from asm/unistd_32.h.
 * - arm64 from asm-generic/unistd.h, with exactly the macros arm64's uapi asm/unistd.h sets
 *   before including it, and __BITS_PER_LONG=64 (arm64's asm/bitsperlong.h).
 *
 * The C preprocessor decides every #if: `cc -E -dM` lists the __NR_ macros, then a second
 * `cc -E` expands each one to its number. Nothing here parses C by hand.
 * Run: node scripts/gen-syscall-tables.mjs [--out FILE]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const OUT = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(ROOT, 'policy', 'data', 'syscalls.json');

const X86_64_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const I386_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_32.h';
const GENERIC_HEADER = '/usr/include/asm-generic/unistd.h';

/**
 * What arm64's uapi asm/unistd.h (linux <= 6.10, the layout linux-libc-dev 6.1 ships) defines
 * before it includes asm-generic/unistd.h. __ARCH_WANT_TIME32_SYSCALLS is among them, but every
 * block it guards reads `defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32`, so on a
 * 64-bit ABI it changes nothing: it matters for 32-bit (compat) builds only. checkTime32Inert()
 * below proves that on the installed header instead of trusting this comment.
 */
const ARM64_WANTS = [
  '__ARCH_WANT_RENAMEAT',
  '__ARCH_WANT_NEW_STAT',
  '__ARCH_WANT_SET_GET_RLIMIT',
  '__ARCH_WANT_TIME32_SYSCALLS',
  '__ARCH_WANT_SYS_CLONE3',
  '__ARCH_WANT_MEMFD_SECRET',
];

/** Macros that are bookkeeping, not syscalls. */
const NOT_SYSCALLS = new Set(['__NR_syscalls', '__NR_arch_specific_syscall']);

const work = mkdtempSync(join(tmpdir(), 'bpfgate-syscalls-'));
try {
  // asm-generic/unistd.h includes <asm/bitsperlong.h>: give it arm64's, not the host's.
  mkdirSync(join(work, 'arm64', 'asm'), { recursive: true });
  writeFileSync(
    join(work, 'arm64', 'asm', 'bitsperlong.h'),
    '#define __BITS_PER_LONG 64\n#include <asm-generic/bitsperlong.h>\n',
  );
  const arm64Include = ['-I', join(work, 'arm64'), '-I', '/usr/include'];

  const x86_64 = syscallTable(`#include "${X86_64_HEADER}"\n`, []);
  const i386 = syscallTable(`#include "${I386_HEADER}"\n`, []);
  const arm64Prelude = (wants) => wants.map((w) => `#define ${w}\n`).join('') + `#include <asm-generic/unistd.h>\n`;
  const arm64 = syscallTable(arm64Prelude(ARM64_WANTS), arm64Include);
  checkTime32Inert(arm64, syscallTable(arm64Prelude(ARM64_WANTS.filter((w) => !w.includes('TIME32'))), arm64Include));
  checkArm64HasOnlyAtForms(arm64);

  const pkg = dpkgVersion('linux-libc-dev');
  const data = {
    generatedBy: 'scripts/gen-syscall-tables.mjs',
    package: pkg,
    abis: {
      x86_64: { source: X86_64_HEADER, defines: [], syscalls: x86_64 },
      i386: { source: I386_HEADER, defines: [], syscalls: i386 },
      arm64: {
        source: GENERIC_HEADER,
        defines: [...ARM64_WANTS, '__BITS_PER_LONG=64'],
        note: '__ARCH_WANT_TIME32_SYSCALLS is set by arm64 uapi asm/unistd.h but inert with __BITS_PER_LONG=64 (verified by the generator)',
        syscalls: arm64,
      },
    },
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(data, null, 1) + '\n');
  const counts = Object.entries(data.abis).map(([abi, t]) => `${abi} ${Object.keys(t.syscalls).length}`);
  console.log(`wrote ${OUT}: ${counts.join(', ')} (linux-libc-dev ${pkg.version})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** name -> number for every __NR_ macro the preprocessor defines after `prelude`. */
function syscallTable(prelude, includeArgs) {
  const base = ['-E', '-undef', '-nostdinc', ...includeArgs, '-x', 'c', '-'];
  const macros = cc(['-dM', ...base], prelude)
    .split('\n')
    .map((line) => /^#define (__NR_\w+)\s/.exec(line)?.[1])
    .filter((name) => name !== undefined && !name.startsWith('__NR3264_') && !NOT_SYSCALLS.has(name));
  // Expand each macro through the preprocessor; each line comes out as "bpfgate_nr NAME EXPR".
  const probe = prelude + macros.map((m) => `bpfgate_nr ${m.slice('__NR_'.length)} ${m}\n`).join('');
  const table = {};
  for (const line of cc(['-P', ...base], probe).split('\n')) {
    const m = /^bpfgate_nr (\w+) (.+)$/.exec(line.trim());
    if (!m) continue;
    table[m[1]] = sumOf(m[2]);
  }
  if (Object.keys(table).length !== macros.length) throw new Error('some __NR_ macros did not expand');
  return Object.fromEntries(Object.entries(table).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1)));
}

/** The expansions are integer sums such as "(244 + 15)". */
function sumOf(expr) {
  if (!/^[\d\s()+]+$/.test(expr)) throw new Error(`unexpected syscall number expression: ${expr}`);
  return expr
    .replace(/[()\s]/g, '')
    .split('+')
    .reduce((sum, term) => sum + Number.parseInt(term, 10), 0);
}

function cc(args, input) {
  return execFileSync('cc', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'inherit'] });
}

function checkTime32Inert(withTime32, withoutTime32) {
  const a = JSON.stringify(withTime32);
  const b = JSON.stringify(withoutTime32);
  if (a !== b) throw new Error('__ARCH_WANT_TIME32_SYSCALLS changes the arm64 table: revisit ARM64_WANTS');
}

/** arm64 is a new-style ABI: the legacy path syscalls exist only as their *at forms. */
function checkArm64HasOnlyAtForms(table) {
  const legacy = ['open', 'stat', 'lstat', 'dup2', 'fork', 'vfork', 'chmod', 'chown', 'mkdir', 'rmdir', 'rename', 'unlink', 'link', 'symlink', 'readlink', 'access', 'creat', 'mknod', 'poll', 'select', 'pipe', 'epoll_create', 'inotify_init', 'eventfd', 'signalfd'];
  const present = legacy.filter((name) => Object.hasOwn(table, name));
  if (present.length > 0) throw new Error(`arm64 table has legacy syscalls ${present.join(', ')}: wrong defines?`);
  for (const name of ['openat', 'newfstatat', 'dup3', 'clone', 'fchmodat', 'mkdirat', 'renameat', 'renameat2', 'unlinkat', 'clone3', 'memfd_secret']) {
    if (!Object.hasOwn(table, name)) throw new Error(`arm64 table lacks ${name}: wrong defines?`);
  }
}

function dpkgVersion(name) {
  const out = execFileSync('dpkg-query', ['-W', '-f', '${Package}\t${Version}\t${Architecture}', name], { encoding: 'utf8' });
  const [pkg, version, arch] = out.split('\t');
  return { name: pkg, version, arch };
}
