/**
 * The guest image's uprobe index, on bpfgate's own USDT program built for both arches with
 * the host's clang and lld (as the image builder builds it): offsets read through the
 * program headers, checked against the section headers (a second way to the same offset)
 * and against the bytes at that offset (a USDT site is a nop).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../core/assets.js';
import { indexLines, parseReadelf } from '../../runners/qemu/uprobe-index.js';

const SDT_DIRS = ['/usr/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu'].filter((d) => existsSync(join(d, 'sys', 'sdt.h')));
const tools = spawnSync('clang', ['--version']).status === 0 && spawnSync('ld.lld', ['--version']).status === 0 && SDT_DIRS.length > 0;
const dir = mkdtempSync(join(tmpdir(), 'bpfgate-uprobe-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function build(target: string): string {
  const out = join(dir, `usdt-${target}`);
  const r = spawnSync('clang', [`--target=${target}`, '-O2', '-ffreestanding', '-fno-stack-protector', '-fno-pic', '-fno-asynchronous-unwind-tables', '-static', '-nostdlib',
    '-fuse-ld=lld', '-Wl,--build-id=none', '-idirafter', SDT_DIRS[0]!, '-o', out, join(PACKAGE_ROOT, 'guest', 'usdt', 'usdt.c')], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return out;
}

function readelf(file: string, ...args: string[]): string {
  return spawnSync('readelf', ['-W', ...args, file], { encoding: 'utf8' }).stdout;
}

/** A symbol's file offset through its section (sh_offset + value - sh_addr): not through segments. */
function offsetBySection(file: string, symbol: string): bigint {
  const sym = readelf(file, '-s').split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[7] === symbol);
  const ndx = Number(sym![6]);
  const section = readelf(file, '-S').split('\n').map((l) => /^\s*\[\s*(\d+)\]\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(l)).find((m) => m && Number(m[1]) === ndx)!;
  return BigInt(`0x${sym![1]}`) - BigInt(`0x${section[2]}`) + BigInt(`0x${section[3]}`);
}

describe.skipIf(!tools)('the uprobe index of the USDT program (needs clang, lld and systemtap-sdt-dev)', () => {
  describe.each([
    ['x86_64-linux-gnu', Buffer.from([0x90])],
    ['aarch64-linux-gnu', Buffer.from([0x1f, 0x20, 0x03, 0xd5])],
  ] as const)('built for %s', (target, nop) => {
    const file = build(target);
    const layout = parseReadelf(readelf(file, '-l', '-S', '-s', '-n'));
    const lines = indexLines('/home/jolsa/tetragon/contrib/tester-progs/usdt', layout);
    const at = (prefix: string) => lines.find((l) => l.startsWith(prefix))?.split(' ');

    it('reads the executable segment and both probe notes', () => {
      expect(layout.segments.filter((s) => s.executable)).toHaveLength(1);
      expect(layout.notes.map((n) => `${n.provider}:${n.name}`)).toEqual(['test:usdt3', 'tetragon:test_4B']);
    });

    it('places each function at the file offset its section gives', () => {
      for (const fn of ['fire_usdt3', 'fire_test_4B', 'bpfgate_usdt_main']) {
        const line = at(`f /home/jolsa/tetragon/contrib/tester-progs/usdt ${fn} `);
        expect(line, fn).toBeDefined();
        expect(BigInt(line![3]!), fn).toBe(offsetBySection(file, fn));
      }
    });

    it('places each USDT probe on its nop, and test_4B\'s semaphore on the zeroed counter in .probes', () => {
      const bytes = readFileSync(file);
      const usdt3 = at('n /home/jolsa/tetragon/contrib/tester-progs/usdt test usdt3 ')!;
      const test4b = at('n /home/jolsa/tetragon/contrib/tester-progs/usdt tetragon test_4B ')!;
      for (const probe of [usdt3, test4b]) {
        const off = Number(BigInt(probe[4]!));
        expect(bytes.subarray(off, off + nop.length).equals(nop), probe.join(' ')).toBe(true);
      }
      expect(usdt3[5]).toBe('0x0');
      expect(BigInt(test4b[5]!)).toBe(offsetBySection(file, 'tetragon_test_4B_semaphore'));
      expect(bytes.readUInt16LE(Number(BigInt(test4b[5]!)))).toBe(0);
    });
  });
});

describe('readelf output as the index reads it', () => {
  it('cuts symbol versions, keeps defined functions only, and lets .dynsym win over .symtab', () => {
    const out = [
      'Program Headers:',
      '  Type           Offset   VirtAddr           PhysAddr           FileSiz  MemSiz   Flg Align',
      '  LOAD           0x000000 0x0000000000000000 0x0000000000000000 0x0270e0 0x0270e0 R   0x1000',
      '  LOAD           0x028000 0x0000000000028000 0x0000000000028000 0x15d3ad 0x15d3ad R E 0x1000',
      "Symbol table '.dynsym' contains 3 entries:",
      '   Num:    Value          Size Type    Bind   Vis      Ndx Name',
      '  1744: 0000000000098930   791 FUNC    GLOBAL DEFAULT   16 malloc@@GLIBC_2.2.5',
      '    12: 0000000000000000     0 FUNC    GLOBAL DEFAULT  UND free@GLIBC_2.2.5 (2)',
      '    13: 0000000000099000     8 OBJECT  GLOBAL DEFAULT   20 stdin@@GLIBC_2.2.5',
      "Symbol table '.symtab' contains 1 entry:",
      '   Num:    Value          Size Type    Bind   Vis      Ndx Name',
      '     1: 0000000000012340   791 FUNC    LOCAL  DEFAULT   16 malloc',
    ].join('\n');
    expect(indexLines('/lib/x86_64-linux-gnu/libc.so.6', parseReadelf(out))).toEqual(['f /lib/x86_64-linux-gnu/libc.so.6 malloc 0x98930']);
  });
});
