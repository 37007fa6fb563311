/**
 * The result store: `results.jsonl` in the out dir, one JSON object per finished
 * check, appended and fsync'd the moment the check finishes, so a run killed
 * halfway (even by SIGKILL) leaves every finished check on disk.
 * Invariants: each line holds exactly the design's keys in the design's order
 * (cell, lane, suite, subject, check, status, reason, evidence, durationMs, then
 * optional source); `all()` returns what a reader of the file would get back; the
 * last record of a check key wins. `--resume` repairs a torn last line (a write cut
 * short by a kill) by truncating the file to its last full line, and says so.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkKey, type CheckResult } from './check.js';
import { InputError } from './errors.js';
import type { RunEvent, RunListener } from './events.js';
import { isReason } from './reasons.js';
import { schemaValidator } from './schemas.js';
import { YamlInput } from './yaml-input.js';

export const RESULTS_FILE = 'results.jsonl';

/** One check as one line of JSON (no newline), keys in the design's order. */
export function serializeResult(r: CheckResult): string {
  const ordered = {
    cell: r.cell,
    lane: r.lane,
    suite: r.suite,
    subject: r.subject,
    check: r.check,
    status: r.status,
    reason: r.reason,
    evidence: r.evidence,
    durationMs: r.durationMs,
    ...(r.source ? { source: r.source } : {}),
  };
  try {
    return JSON.stringify(ordered, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch (cause) {
    // Evidence that JSON cannot hold (a cycle) must not lose the verdict itself.
    return JSON.stringify({ ...ordered, evidence: { unserializableEvidence: String(cause) } });
  }
}

/**
 * Parse and validate one line (core/schema/results.schema.json, then a known reason
 * code); `line` is 1-based. JSON.parse reads a good line, as it is fast; a line that
 * fails is read again with positions, so the error names its column and field.
 */
export function parseResultLine(text: string, file: string, line: number): CheckResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // positioned below
  }
  const validate = schemaValidator<CheckResult>('results');
  if (value !== undefined && validate(value) && (value.reason === null || isReason(value.reason))) return value;
  try {
    const input = YamlInput.parse(text, file, 'results-malformed', { dialect: 'json' });
    const result = input.validate(validate, 'results-malformed');
    throw input.error('results-malformed', ['reason'], `expected a known reason code (got ${JSON.stringify(result.reason)})`);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    // The line was parsed on its own: its line 1 is the file's line `line`.
    const what = value === undefined ? '' : 'not a check result: ';
    throw new InputError(error.code, file, { line, column: error.column ?? 1, ...(error.field ? { field: error.field } : {}) }, `${what}${error.detail}`, error.cause);
  }
}

/** Results in first-seen order, the last record of a key replacing earlier ones in place. */
class ResultIndex {
  private readonly byKey = new Map<string, number>();
  readonly list: CheckResult[] = [];
  put(r: CheckResult): void {
    const key = checkKey(r);
    const at = this.byKey.get(key);
    if (at === undefined) {
      this.byKey.set(key, this.list.length);
      this.list.push(r);
    } else {
      this.list[at] = r;
    }
  }
  has(key: string): boolean {
    return this.byKey.has(key);
  }
  get(key: string): CheckResult | undefined {
    const at = this.byKey.get(key);
    return at === undefined ? undefined : this.list[at];
  }
}

export interface OpenOptions {
  /** Keep the checks already in the file (and repair a torn last line); otherwise start an empty file. */
  resume?: boolean;
}

export class ResultStore implements Disposable {
  private readonly index = new ResultIndex();
  private fd: number | undefined;
  private readonly noticeList: string[] = [];

  private constructor(readonly file: string) {}

  /** Open `outDir/results.jsonl` (creating the directory); with `resume`, load and repair what is there. */
  static open(outDir: string, opts: OpenOptions = {}): ResultStore {
    mkdirSync(outDir, { recursive: true });
    const store = new ResultStore(join(outDir, RESULTS_FILE));
    if (opts.resume) store.load();
    store.fd = openSync(store.file, opts.resume ? 'a' : 'w');
    // Make the file's directory entry durable too, not only its content.
    const dirFd = openSync(outDir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    return store;
  }

  /** What opening did that the user should hear about (a repaired torn line). */
  get notices(): readonly string[] {
    return this.noticeList;
  }

  /** Is this check (by `checkKey`) already finished? Runners skip it on `--resume`. */
  has(key: string): boolean {
    return this.index.has(key);
  }

  /** The recorded result of a check, so a runner can decide (e.g. rerun an infra error on resume). */
  get(key: string): CheckResult | undefined {
    return this.index.get(key);
  }

  /** Every finished check, in the order first recorded. */
  all(): CheckResult[] {
    return [...this.index.list];
  }

  get size(): number {
    return this.index.list.length;
  }

  /** Record one finished check: written and fsync'd before this returns. */
  append(result: CheckResult): void {
    if (this.fd === undefined) throw new Error(`result store ${this.file} is closed`);
    const line = serializeResult(result);
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    fsyncSync(this.fd);
    this.index.put(JSON.parse(line) as CheckResult);
  }

  /** A RunListener that records every `check` event; put it first on the bus. */
  readonly listener: RunListener = (event: RunEvent) => {
    if (event.type === 'check') this.append(event.result);
  };

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private load(): void {
    let bytes: Buffer;
    try {
      if (!statSync(this.file).isFile()) throw new InputError('results-malformed', this.file, {}, 'is not a regular file');
      bytes = readFileSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const end = bytes.lastIndexOf(0x0a) + 1;
    const lines = bytes.subarray(0, end).toString('utf8').split('\n');
    lines.pop(); // the empty string after the final newline
    for (const [i, text] of lines.entries()) {
      if (text.trim() !== '') this.index.put(parseResultLine(text, this.file, i + 1));
    }
    if (end < bytes.length) {
      // Bytes after the last newline: a line whose write a kill cut short. It holds no finished check.
      truncateSync(this.file, end);
      this.noticeList.push(
        `${this.file}:${lines.length + 1}: dropped a torn last line (${bytes.length - end} bytes) left by an interrupted run; its check will run again`,
      );
    }
  }
}

/**
 * Read the results of a finished or interrupted run, for `bpfgate table --from DIR`.
 * `path` is the out dir or the results.jsonl itself. Every malformed line (a torn
 * last line included) is an InputError naming file:line.
 */
export async function readResultsDir(path: string): Promise<CheckResult[]> {
  let file = path;
  try {
    if ((await stat(path)).isDirectory()) file = join(path, RESULTS_FILE);
  } catch (cause) {
    throw new InputError('results-missing', path, {}, `no results here: ${(cause as Error).message}`, cause);
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new InputError('results-missing', file, {}, `cannot read results: ${(cause as Error).message}`, cause);
  }
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  if (tail !== '') {
    throw new InputError(
      'results-malformed',
      file,
      { line: lines.length + 1 },
      'torn last line (the run was killed while writing it); `bpfgate run --resume` repairs it',
    );
  }
  const index = new ResultIndex();
  for (const [i, line] of lines.entries()) {
    if (line.trim() !== '') index.put(parseResultLine(line, file, i + 1));
  }
  return index.list;
}
