/**
 * The guest image's uprobe index: for every ELF executable and shared object in the image, the file offsets at
 * which a uprobe goes for each function symbol and each USDT probe, read on the host with
 * binutils' readelf when the image is built, and shipped in the image
 * (`/lib/bpfgate/uprobe-index`), so that a guest places uprobes by offset without an ELF
 * reader of its own and a warm run reads no ELF at all.
 *
 * Offsets follow the agent's BPF library (cilium/ebpf link.Executable):
 * - functions: STT_FUNC symbols of .symtab, then .dynsym (a later one of the same name
 *   wins), defined ones only; the address becomes a file offset through the executable
 *   PT_LOAD segment that holds it (offset = address - p_vaddr + p_offset), and stays the
 *   address when none does. Versions (`malloc@@GLIBC_2.2.5`) are cut off the name.
 * - USDT probes (.note.stapsdt, as `readelf -n` prints them): the location moved by the
 *   difference between the .stapsdt.base section's address and the note's Base (prelink),
 *   then turned into a file offset like a function; the semaphore's address into the
 *   file offset of the segment that holds it (the kernel finds a uprobe's reference
 *   counter by file offset: `PATH:OFFSET(REF_CTR_OFFSET)` in uprobe_events).
 *
 * Lines (whitespace-separated, paths absolute in the guest):
 *   f PATH SYMBOL 0xOFFSET
 *   n PATH PROVIDER NAME 0xOFFSET 0xSEMAPHORE_OFFSET   (0x0: no semaphore)
 */
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { stagedEntries } from './cpio.js';
import { assertToolOk, runHostTool } from './host-tools.js';

/** Where the index lives in the guest image. */
export const UPROBE_INDEX_PATH = 'lib/bpfgate/uprobe-index';

/** Bump when what the index holds changes: it is part of the guest image's cache key. */
export const UPROBE_INDEX_VERSION = 2;

interface Segment {
  offset: bigint;
  vaddr: bigint;
  memsz: bigint;
  executable: boolean;
}

export interface UsdtNote {
  provider: string;
  name: string;
  location: bigint;
  base: bigint;
  semaphore: bigint;
}

/** What one `readelf -W -l -S -s -n FILE` says that the index needs. */
export interface ElfLayout {
  segments: Segment[];
  /** Section name -> address. */
  sections: Map<string, bigint>;
  /** Defined STT_FUNC symbols per table, in file order. */
  functions: { table: string; name: string; value: bigint }[];
  notes: UsdtNote[];
}

const hex = (s: string): bigint => BigInt(s.startsWith('0x') ? s : `0x${s}`);

/** Reads the parts of readelf's output the index needs (binutils' text format, `-W`). */
export function parseReadelf(out: string): ElfLayout {
  const layout: ElfLayout = { segments: [], sections: new Map(), functions: [], notes: [] };
  let table: string | undefined;
  let note: Partial<UsdtNote> | undefined;
  for (const line of out.split('\n')) {
    const load = /^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+([RWE ]+?)\s+0x[0-9a-f]+\s*$/.exec(line);
    if (load) {
      layout.segments.push({ offset: hex(load[1]!), vaddr: hex(load[2]!), memsz: hex(load[3]!), executable: load[4]!.includes('E') });
      continue;
    }
    const section = /^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]{8,16})\s/.exec(line);
    if (section) {
      layout.sections.set(section[1]!, hex(section[2]!));
      continue;
    }
    const symtab = /^Symbol table '([^']+)'/.exec(line);
    if (symtab) {
      table = symtab[1];
      continue;
    }
    if (/^Displaying notes|^\S/.test(line)) table = undefined;
    if (table) {
      // Num: Value Size Type Bind Vis Ndx Name
      const f = line.trim().split(/\s+/);
      if (f.length >= 8 && f[3] === 'FUNC' && f[6] !== 'UND') {
        const name = f[7]!.split('@')[0]!;
        if (name) layout.functions.push({ table, name, value: hex(f[1]!) });
      }
      continue;
    }
    const provider = /Provider:\s*(\S+)/.exec(line);
    if (provider) {
      note = { provider: provider[1]! };
      continue;
    }
    const name = /^\s*Name:\s*(\S+)/.exec(line);
    if (name && note) {
      note.name = name[1]!;
      continue;
    }
    const where = /Location:\s*(0x[0-9a-f]+),\s*Base:\s*(0x[0-9a-f]+),\s*Semaphore:\s*(0x[0-9a-f]+)/.exec(line);
    if (where && note?.provider && note.name) {
      layout.notes.push({ provider: note.provider, name: note.name, location: hex(where[1]!), base: hex(where[2]!), semaphore: hex(where[3]!) });
      note = undefined;
    }
  }
  return layout;
}

/** A virtual address as a file offset: through the (executable, if asked) PT_LOAD segment that holds it. */
export function fileOffset(layout: ElfLayout, address: bigint, executableOnly: boolean): bigint | undefined {
  const segment = layout.segments.find((s) => (!executableOnly || s.executable) && s.vaddr <= address && address < s.vaddr + s.memsz);
  return segment ? address - segment.vaddr + segment.offset : undefined;
}

/** The index lines of one file (`path` as the guest sees it). */
export function indexLines(path: string, layout: ElfLayout): string[] {
  const offsets = new Map<string, bigint>();
  // .symtab first, then .dynsym: the agent's library lets a later symbol of the same name win.
  const ordered = [...layout.functions.filter((f) => f.table !== '.dynsym'), ...layout.functions.filter((f) => f.table === '.dynsym')];
  for (const f of ordered) offsets.set(f.name, fileOffset(layout, f.value, true) ?? f.value);
  const lines = [...offsets].map(([name, off]) => `f ${path} ${name} 0x${off.toString(16)}`);
  const base = layout.sections.get('.stapsdt.base');
  for (const n of layout.notes) {
    const pc = base !== undefined && n.base !== 0n ? n.location + (base - n.base) : n.location;
    const at = fileOffset(layout, pc, true);
    if (at === undefined) continue;
    const sem = n.semaphore === 0n ? 0n : fileOffset(layout, n.semaphore, false);
    if (sem === undefined) continue;
    lines.push(`n ${path} ${n.provider} ${n.name} 0x${at.toString(16)} 0x${sem.toString(16)}`);
  }
  return lines;
}

/** An ELF executable or shared object (e_type EXEC or DYN): what the agent's library opens for uprobes. */
async function isExecutableElf(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(18);
    const { bytesRead } = await handle.read(header, 0, 18, 0);
    if (bytesRead < 18 || !header.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return false;
    const type = header[5] === 2 ? header.readUInt16BE(16) : header.readUInt16LE(16);
    return type === 2 || type === 3;
  } finally {
    await handle.close();
  }
}

/** The index of every ELF executable and shared object under `root` (the staged image), sorted by path. */
export async function buildUprobeIndex(root: string): Promise<string> {
  const lines = ['# bpfgate uprobe index: f PATH SYMBOL OFFSET | n PATH PROVIDER NAME OFFSET SEMAPHORE (file offsets; readelf at image build)'];
  for (const rel of (await stagedEntries(root)).sort()) {
    const file = join(root, rel);
    const st = await lstat(file);
    if (!st.isFile() || st.size < 64 || !(await isExecutableElf(file))) continue;
    const r = await runHostTool('readelf', ['-W', '-l', '-S', '-s', '-n', file], { providedBy: 'binutils' });
    assertToolOk(r, 'infra-guest-build', `readelf ${file}`);
    lines.push(...indexLines(`/${rel}`, parseReadelf(String(r.stdout))));
  }
  return `${lines.join('\n')}\n`;
}
