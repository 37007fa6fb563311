/**
 * The host half of the guest console protocol (guest/rootfs/lib/bpfgate/proto.sh).
 *
 * A record is one line `@@BPFGATE:<seq>:<type>:<md5 prefix>:<base64 payload>@@`.
 * The console also carries the kernel's own messages, and the kernel may print one
 * in the middle of a record. The parser therefore scans for frames anywhere in the
 * stream, verifies each checksum, and when a frame fails it tries once more with
 * the console lines that were spliced into it removed. Gaps in the sequence are
 * reported, so a lost record is an error and never a silent pass.
 */
import { createHash } from 'node:crypto';

export interface GuestRecord {
  seq: number;
  type: string;
  /** key=value tokens of the header line. */
  header: Record<string, string>;
  /** Free text after the header line. */
  body: string;
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
      const raw = this.buffer.slice(start, end + 2);
      this.buffer = this.buffer.slice(end + 2);
      const record = this.decodeFrame(raw);
      if (record) out.push(record);
    }
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

/** Build a frame the way the guest does; used by tests and by the host-side fake of nothing else. */
export function encodeRecord(seq: number, type: string, header: string, body = ''): string {
  const payload = Buffer.from(`${header}\n${body}`, 'utf8').toString('base64');
  return `\n@@BPFGATE:${seq}:${type}:${md5Prefix(payload)}:${payload}@@\n`;
}
