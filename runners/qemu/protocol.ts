/**
 * The host half of the guest console protocol (guest/rootfs/lib/bpfgate/bin/emit).
 *
 * A record is one line `@@BPFGATE:<seq>:<type>:<md5 prefix>:<base64 payload>@@`.
 * The console also carries the kernel's own messages, and the kernel may print one
 * in the middle of a record. The parser therefore scans for frames anywhere in the
 * stream, verifies each checksum, and when a frame fails it tries once more with
 * the console lines that were spliced into it removed. Gaps in the sequence are
 * reported, so a lost record is an error and never a silent pass.
 *
 * A record that completes another (`attach-hits of=attach prog=kprobe` before
 * `attach prog=kprobe rc=0`) is a part: its header says which type it belongs to
 * (`of=`) and repeats that record's identifying keys. The guest sends parts first; the
 * parser hands them to the next record of that type whose header has the same values
 * for those keys, as `parts`, so a reader has all of a record when it arrives. Parts are
 * delivered as records of their own too: nothing on the console is hidden.
 */
import { createHash } from 'node:crypto';

export interface GuestRecord {
  seq: number;
  type: string;
  /** key=value tokens of the header line. */
  header: Record<string, string>;
  /** Free text after the header line. */
  body: string;
  /** The part records that came before this one and name it, by their type. */
  parts?: Record<string, GuestRecord>;
}

/** The header key of a part record that names the type of the record it belongs to. */
export const PART_OF = 'of';

/** Does this part belong to that record: its type, and the same value for every key the part repeats? */
function partOf(part: GuestRecord, record: GuestRecord): boolean {
  if (part.header[PART_OF] !== record.type) return false;
  return Object.entries(part.header).every(([key, value]) => key === PART_OF || record.header[key] === value);
}

export interface ProtocolProblem {
  kind: 'checksum' | 'gap' | 'encoding';
  seq?: number;
  message: string;
}

const FRAME = /@@BPFGATE:(\d+):([a-z0-9-]+):([0-9a-f]{8}):([^@]*)@@/g;
/**
 * A kernel message spliced into a record: printk writes "[   12.345678] text\n" at the
 * cursor. The guest boots with printk.time=1, so every such message starts with its
 * timestamp; base64 never contains "[", so the splice can be cut out exactly.
 */
const SPLICED_LINE = /\[\s*\d+\.\d+\][^\n]*\n|\r/g;

function md5Prefix(text: string): string {
  return createHash('md5').update(text).digest('hex').slice(0, 8);
}

function decodePayload(seq: number, type: string, payload: string): GuestRecord {
  const text = Buffer.from(payload, 'base64').toString('utf8');
  const newline = text.indexOf('\n');
  const headerLine = newline === -1 ? text : text.slice(0, newline);
  const body = newline === -1 ? '' : text.slice(newline + 1);
  const header: Record<string, string> = {};
  for (const token of headerLine.split(' ')) {
    if (!token) continue;
    const eq = token.indexOf('=');
    if (eq === -1) header[token] = '';
    else header[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return { seq, type, header, body };
}

/**
 * Incremental parser: feed console bytes as they arrive, get records in order.
 * Frames can span chunk boundaries; only complete frames are consumed.
 */
export class ConsoleParser {
  private buffer = '';
  private lastSeq = 0;
  /** Parts whose record has not come yet. */
  private held: GuestRecord[] = [];
  readonly problems: ProtocolProblem[] = [];

  /** Returns the records completed by this chunk. */
  push(chunk: string): GuestRecord[] {
    this.buffer += chunk;
    const out: GuestRecord[] = [];
    for (;;) {
      const start = this.buffer.indexOf('@@BPFGATE:');
      if (start === -1) {
        // Keep a tail in case a frame marker is split across chunks.
        this.buffer = this.buffer.slice(-16);
        return out;
      }
      const end = this.buffer.indexOf('@@', start + 10);
      if (end === -1) {
        this.buffer = this.buffer.slice(start);
        return out;
      }
      if (this.buffer.startsWith('@@BPFGATE:', end)) {
        // Cut short (its writer died mid-write): the next frame starts where its end should be.
        const head = this.buffer.slice(start, Math.min(end, start + 60)).replace(/[\r\n]/g, ' ');
        this.problems.push({ kind: 'checksum', message: `a record was cut short: ${head}…` });
        this.buffer = this.buffer.slice(end);
        continue;
      }
      const raw = this.buffer.slice(start, end + 2);
      this.buffer = this.buffer.slice(end + 2);
      const record = this.decodeFrame(raw);
      if (record) out.push(this.joinParts(record));
    }
  }

  private joinParts(record: GuestRecord): GuestRecord {
    if (record.header[PART_OF] !== undefined) {
      this.held.push(record);
      return record;
    }
    const mine = this.held.filter((p) => partOf(p, record));
    if (mine.length === 0) return record;
    this.held = this.held.filter((p) => !mine.includes(p));
    return { ...record, parts: Object.fromEntries(mine.map((p) => [p.type, p])) };
  }

  private decodeFrame(raw: string): GuestRecord | undefined {
    const candidates = [raw, raw.replace(SPLICED_LINE, '')];
    for (const candidate of candidates) {
      FRAME.lastIndex = 0;
      const m = FRAME.exec(candidate);
      if (!m) continue;
      const [, seqText, type, sum, payload] = m as unknown as [string, string, string, string, string];
      if (md5Prefix(payload) !== sum) continue;
      const seq = Number(seqText);
      if (seq !== this.lastSeq + 1) {
        this.problems.push({ kind: 'gap', seq, message: `record ${this.lastSeq + 1} to ${seq - 1} lost` });
      }
      this.lastSeq = seq;
      try {
        return decodePayload(seq, type, payload);
      } catch (err) {
        this.problems.push({ kind: 'encoding', seq, message: String(err) });
        return undefined;
      }
    }
    const head = raw.slice(0, 60).replace(/[\r\n]/g, ' ');
    this.problems.push({ kind: 'checksum', message: `a record failed its checksum: ${head}…` });
    return undefined;
  }
}

/** Parse a whole console log at once (tests, `--resume` of an old serial.log). */
export function parseConsole(text: string): { records: GuestRecord[]; problems: ProtocolProblem[] } {
  const parser = new ConsoleParser();
  const records = parser.push(text);
  return { records, problems: parser.problems };
}

/** Build a frame the way the guest's emit does; used by tests. */
export function encodeRecord(seq: number, type: string, header: string, body = ''): string {
  const payload = Buffer.from(`${header}\n${body}`, 'utf8').toString('base64');
  return `\n@@BPFGATE:${seq}:${type}:${md5Prefix(payload)}:${payload}@@\n`;
}
