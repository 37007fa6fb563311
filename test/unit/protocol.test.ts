import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleParser, encodeRecord, parseConsole } from '../../runners/qemu/protocol.js';
import { PROJECT_ROOT } from '../support/shared.js';

const LIB = join(PROJECT_ROOT, 'guest', 'rootfs', 'lib', 'bpfgate');
const BUSYBOX = '/bin/busybox';
const CAN_EMIT = existsSync(BUSYBOX);

/** A fresh run directory and console file for the guest's own emit, run by busybox sh. */
function guestConsole() {
  const dir = mkdtempSync(join(tmpdir(), 'bpfgate-emit-'));
  const run = join(dir, 'run');
  const consoleFile = join(dir, 'console');
  writeFileSync(consoleFile, '');
  const env = { ...process.env, BPFGATE_RUN: run, BPFGATE_CONSOLE: consoleFile, PATH: `${join(LIB, 'bin')}:${process.env.PATH}` };
  return {
    run,
    consoleFile,
    env,
    /** Runs a script in a shell like a step's: the emit function defined, the emit command on PATH. */
    sh: (script: string) => execFileSync(BUSYBOX, ['sh', '-c', `. ${join(LIB, 'emit.sh')}; ${script}`], { env, encoding: 'latin1' }),
    spawn: (script: string) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(BUSYBOX, ['sh', '-c', script], { env, stdio: 'ignore' });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}`))));
      }),
    read: () => readFileSync(consoleFile, 'latin1'),
  };
}

describe('the console protocol', () => {
  it.skipIf(!CAN_EMIT)('decodes what the guest emit writes, header tokens and multi-line body, from an argument or stdin', () => {
    const guest = guestConsole();
    guest.sh(`emit attach "prog=fentry rc=255" "libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)
Error: failed to pin all programs"; printf 'line 1\\nline 2\\n' | emit -i dmesg ""; emit done "uptime=4.55"`);
    const { records, problems } = parseConsole(guest.read());
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.seq, r.type])).toEqual([[1, 'attach'], [2, 'dmesg'], [3, 'done']]);
    expect(records[0]!.header).toEqual({ prog: 'fentry', rc: '255' });
    expect(records[0]!.body).toBe("libbpf: prog 'fentry_sfo': failed to attach: unknown error (-524)\nError: failed to pin all programs");
    expect(records[1]!.body).toBe('line 1\nline 2\n');
    expect(records[2]!.header.uptime).toBe('4.55');
  });

  it.skipIf(!CAN_EMIT)('numbers and writes frames of many processes emitting at once, each whole', async () => {
    const guest = guestConsole();
    // 6 KiB records, more than one write() apiece: two processes that exec the emit command,
    // and one shell whose two background subshells call the function (their $$ is the parent's).
    const burst = (w: string) => `for n in 1 2 3 4 5; do head -c 6144 /dev/zero | tr '\\0' ${w} | emit -i burst "writer=${w} n=$n"; done`;
    await Promise.all([
      guest.spawn(burst('a')),
      guest.spawn(burst('b')),
      guest.spawn(`. ${join(LIB, 'emit.sh')}; ( ${burst('c')} ) & ( ${burst('d')} ) & wait`),
    ]);
    const { records, problems } = parseConsole(guest.read());
    expect(problems).toEqual([]);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const r of records) expect(r.body).toBe(r.header.writer!.repeat(6144));
    expect(new Set(records.map((r) => `${r.header.writer}/${r.header.n}`)).size).toBe(20);
  }, 60_000);

  it.skipIf(!CAN_EMIT)('waits for the writer that holds the lock: no byte of another frame lands inside its frame', () => {
    const guest = guestConsole();
    const frame = encodeRecord(1, 'first', 'x=1', 'z'.repeat(3000));
    const half = frame.length >> 1;
    // A writer takes the lock and is slow to finish its frame; emit starts in the middle of it.
    guest.sh(`mkdir -p "$BPFGATE_RUN"; ln -sn "pid:$$" "$BPFGATE_RUN/lock"
printf '%s' '${frame.slice(0, half)}' >> "$BPFGATE_CONSOLE"
( sleep 0.1; emit second "y=2" ) &
sleep 0.6
printf '%s' '${frame.slice(half)}' >> "$BPFGATE_CONSOLE"; echo 1 > "$BPFGATE_RUN/seq"; rm "$BPFGATE_RUN/lock"
wait`);
    const { records, problems } = parseConsole(guest.read());
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.seq, r.type])).toEqual([[1, 'first'], [2, 'second']]);
  });

  it.skipIf(!CAN_EMIT)('breaks a lock whose holder died in it', () => {
    const guest = guestConsole();
    const dead = execFileSync(BUSYBOX, ['sh', '-c', 'echo $$'], { encoding: 'utf8' }).trim();
    guest.sh(`mkdir -p "$BPFGATE_RUN"; ln -sn "pid:${dead}" "$BPFGATE_RUN/lock"; emit after-the-dead "x=1"`);
    const { records, problems } = parseConsole(guest.read());
    expect(problems).toEqual([]);
    expect(records.map((r) => r.type)).toEqual(['after-the-dead']);
    expect(existsSync(join(guest.run, 'lock'))).toBe(false);
  });

  it.skipIf(!CAN_EMIT)('works in a step under set -e, from the first record on', () => {
    const guest = guestConsole();
    guest.sh(`set -e; emit first "x=1"; emit second "x=2"; echo reached`);
    expect(parseConsole(guest.read()).records.map((r) => [r.seq, r.type])).toEqual([[1, 'first'], [2, 'second']]);
  });

  it.skipIf(!CAN_EMIT)('reports the number of a writer that died after taking it as a gap', () => {
    const guest = guestConsole();
    // The second writer took number 2 from the sequence file and never wrote its frame.
    guest.sh(`emit hello "agent=2"; echo 2 > "$BPFGATE_RUN/seq"; emit done ""`);
    const { records, problems } = parseConsole(guest.read());
    expect(records.map((r) => [r.seq, r.type])).toEqual([[1, 'hello'], [3, 'done']]);
    expect(problems).toEqual([{ kind: 'gap', seq: 3, message: 'record 2 to 2 lost' }]);
  });

  it('reports a record cut short by the death of its writer and still reads the next one', () => {
    const cut = encodeRecord(1, 'burst', 'writer=a', 'a'.repeat(300)).slice(0, 120);
    const { records, problems } = parseConsole(cut + encodeRecord(2, 'done', ''));
    expect(records.map((r) => [r.seq, r.type])).toEqual([[2, 'done']]);
    expect(problems.map((p) => p.kind)).toEqual(['checksum', 'gap']);
    expect(problems[0]!.message).toMatch(/^a record was cut short: @@BPFGATE:1:burst:/);
  });

  it('reads two frames written back to back by different writers, with no line break between them', () => {
    const a = encodeRecord(1, 'counters', 'phase=base up=1.0', 'b0 3').trim();
    const b = encodeRecord(2, 'agent-log', 'alive=1', 'level=info msg="Starting"').trim();
    const { records, problems } = parseConsole(`${a}${b}\r\n${encodeRecord(3, 'done', '')}`);
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.seq, r.type])).toEqual([[1, 'counters'], [2, 'agent-log'], [3, 'done']]);
    expect(records[1]!.body).toBe('level=info msg="Starting"');
  });

  it('gives a record the parts sent before it that name it, past other writers\' records', () => {
    const text = [
      encodeRecord(1, 'attach-hits', 'of=attach prog=kprobe', '[{"key":0,"value":3}]'),
      encodeRecord(2, 'tetragon-events', 'bytes=0'), // another writer in between
      encodeRecord(3, 'attach-hits', 'of=attach prog=fentry', '[{"key":0,"value":5}]'),
      encodeRecord(4, 'attach', 'prog=kprobe rc=0', ''),
      encodeRecord(5, 'attach', 'prog=lsm rc=0', ''),
      encodeRecord(6, 'attach', 'prog=fentry rc=0', ''),
    ].join('');
    const { records, problems } = parseConsole(text);
    expect(problems).toEqual([]);
    // Parts are records too: nothing on the console is hidden.
    expect(records.map((r) => r.type)).toEqual(['attach-hits', 'tetragon-events', 'attach-hits', 'attach', 'attach', 'attach']);
    const attach = (prog: string) => records.find((r) => r.type === 'attach' && r.header.prog === prog)!;
    expect(attach('kprobe').parts?.['attach-hits']?.body).toBe('[{"key":0,"value":3}]');
    expect(attach('fentry').parts?.['attach-hits']?.body).toBe('[{"key":0,"value":5}]');
    expect(attach('lsm').parts).toBeUndefined();
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
