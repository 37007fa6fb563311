import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleParser, encodeRecord, parseConsole } from '../../runners/qemu/protocol.js';
import { PROJECT_ROOT } from '../support/shared.js';

const PROTO = join(PROJECT_ROOT, 'guest', 'rootfs', 'lib', 'bpfgate', 'proto.sh');
const BUSYBOX = '/bin/busybox';

/** Frames written by the guest's own emit(), run by busybox sh: both halves of the protocol must agree. */
function guestEmit(script: string): string {
  return execFileSync(BUSYBOX, ['sh', '-c', `. ${PROTO}; ${script}`], { encoding: 'latin1' });
}

describe('the console protocol', () => {
  it.skipIf(!existsSync(BUSYBOX))('decodes what the guest emit() writes, header tokens and multi-line body', () => {
    const console = guestEmit(`emit attach "prog=fentry rc=255" "libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)
Error: failed to pin all programs"; emit done "uptime=4.55"`);
    const { records, problems } = parseConsole(console);
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.seq, r.type])).toEqual([[1, 'attach'], [2, 'done']]);
    expect(records[0]!.header).toEqual({ prog: 'fentry', rc: '255' });
    expect(records[0]!.body).toBe("libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)\nError: failed to pin all programs");
    expect(records[1]!.header.uptime).toBe('4.55');
  });

  it('finds records between kernel messages and serial line noise', () => {
    const text = `[    0.000000] Linux version 6.12.107\r\n${encodeRecord(1, 'hello', 'agent=1')}\r\n[    3.1] random: crng init done\r\n${encodeRecord(2, 'facts', 'release=6.12 page_kib=16', 'lsm=lockdown,bpf')}`;
    const { records, problems } = parseConsole(text);
    expect(problems).toEqual([]);
    expect(records.map((r) => r.type)).toEqual(['hello', 'facts']);
    expect(records[1]!.header.page_kib).toBe('16');
  });

  it('repairs a record that a timestamped kernel message was printed into', () => {
    const frame = encodeRecord(1, 'ringbuf', 'size=4096 rc=255', 'Error: map create failed: Invalid argument');
    const cut = Math.floor(frame.length / 2);
    const spliced = `${frame.slice(0, cut)}[   12.345678] audit: type=1400 apparmor="DENIED"\r\n${frame.slice(cut)}`;
    const { records, problems } = parseConsole(spliced);
    expect(problems).toEqual([]);
    expect(records[0]!.header).toEqual({ size: '4096', rc: '255' });
    expect(records[0]!.body).toBe('Error: map create failed: Invalid argument');
  });

  it('reports a corrupted record instead of trusting it', () => {
    const frame = encodeRecord(1, 'attach', 'prog=lsm rc=0', '[{"key":0,"value":17}]');
    const corrupted = frame.replace(/:([A-Za-z0-9+/]{4})/, ':AAAA');
    const { records, problems } = parseConsole(corrupted);
    expect(records).toEqual([]);
    expect(problems[0]?.kind).toBe('checksum');
  });

  it('reports a lost record as a gap in the sequence', () => {
    const { records, problems } = parseConsole(encodeRecord(1, 'hello', 'a=1') + encodeRecord(3, 'done', ''));
    expect(records).toHaveLength(2);
    expect(problems).toEqual([{ kind: 'gap', seq: 3, message: 'record 2 to 2 lost' }]);
  });

  it('assembles records split across arbitrary chunk boundaries', () => {
    const text = encodeRecord(1, 'hello', 'agent=1') + encodeRecord(2, 'dmesg', '', 'x'.repeat(5000)) + encodeRecord(3, 'done', 'uptime=1');
    for (const size of [1, 7, 64, 4096]) {
      const parser = new ConsoleParser();
      const got = [];
      for (let i = 0; i < text.length; i += size) got.push(...parser.push(text.slice(i, i + size)));
      expect(got.map((r) => r.type), `chunk size ${size}`).toEqual(['hello', 'dmesg', 'done']);
      expect(got[1]!.body).toHaveLength(5000);
      expect(parser.problems).toEqual([]);
    }
  });
});
