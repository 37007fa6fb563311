/**
 * GitHub Actions output, when GITHUB_ACTIONS=true: the Markdown report appended to
 * $GITHUB_STEP_SUMMARY (cut at a line, with a note, where it would pass GitHub's 1 MiB
 * with what earlier steps wrote), and one workflow command per failing policy line
 * (`::error file=…,line=…,title=…::message`). Failures of the same check with the same
 * reason on one line are folded into one annotation listing their cells, because
 * GitHub shows only a few annotations per step. Paths are made relative to the
 * workspace ($GITHUB_WORKSPACE, else the cwd). Values are escaped per GitHub's
 * workflow-command rules (% \r \n in data; also : and , in properties).
 */
import { appendFile, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { checkKey, type CheckResult } from '../core/check.js';
import { REASONS } from '../core/reasons.js';

/** GitHub refuses a step summary over 1 MiB; a longer report is cut at a line, with a note. */
export const SUMMARY_LIMIT = 1024 * 1024;

/** Annotations are read by people in a side panel: the full evidence is in junit.xml and table.html. */
const EVIDENCE_LIMIT = 600;

export function githubEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true';
}

/** Escape the message of a workflow command. */
export function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Escape a property value (file, title) of a workflow command. */
export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export interface AnnotationOptions {
  /** The repository checkout; paths are written relative to it. */
  workspace: string;
  /** Check keys (`checkKey`) the baseline expects: annotated as warnings, not errors. */
  expected?: ReadonlySet<string>;
}

/** Workflow command lines for the failing checks that carry a source line. */
export function annotations(results: readonly CheckResult[], opts: AnnotationOptions): string[] {
  const groups = new Map<string, { level: 'error' | 'warning'; r: CheckResult; cells: string[] }>();
  for (const r of results) {
    if (r.status !== 'fail' || !r.source) continue;
    const level = opts.expected?.has(checkKey(r)) ? 'warning' : 'error';
    const key = [level, r.source.file, r.source.line, r.subject, r.check, r.reason].join('\u0000');
    const group = groups.get(key);
    if (group) group.cells.push(r.cell);
    else groups.set(key, { level, r, cells: [r.cell] });
  }
  return [...groups.values()].map(({ level, r, cells }) => {
    const source = r.source ?? { file: '', line: 1 };
    const abs = isAbsolute(source.file) ? source.file : resolve(opts.workspace, source.file);
    const file = relative(opts.workspace, abs).split(sep).join('/');
    const reason = r.reason ? `${r.reason}: ${REASONS[r.reason] ?? r.reason}` : 'failed';
    const props = [`file=${escapeProperty(file)}`, `line=${source.line}`];
    if (source.column !== undefined) props.push(`col=${source.column}`);
    props.push(`title=${escapeProperty(`bpfgate: ${r.subject} ${r.check}`)}`);
    const expected = level === 'warning' ? ' (expected by the baseline)' : '';
    const evidence = JSON.stringify(r.evidence);
    const shown = evidence.length > EVIDENCE_LIMIT ? `${evidence.slice(0, EVIDENCE_LIMIT)}…` : evidence;
    const message = `${reason}${expected}\non ${cells.join(', ')}\nevidence (${r.cell}): ${shown}`;
    return `::${level} ${props.join(',')}::${escapeData(message)}`;
  });
}

export interface GithubOptions {
  env?: NodeJS.ProcessEnv;
  /** Where workflow commands go; the runner reads them from stdout. */
  write?: (line: string) => void;
  expected?: ReadonlySet<string>;
}

/**
 * The Markdown report cut to `budget` bytes at a line boundary (a table cut between
 * rows is still a table), with a note that says so and where the whole report is.
 */
export function fitStepSummary(markdown: string, budget: number): string {
  if (Buffer.byteLength(markdown) <= budget) return markdown;
  const lines = markdown.split('\n');
  const note = (shown: number) =>
    `\n\n**The report is cut here** (${shown} of ${lines.length} lines) to stay under GitHub's 1 MiB job summary limit; the whole report is table.md and table.html in the run's output.\n`;
  const room = budget - Buffer.byteLength(note(lines.length));
  let used = 0;
  let shown = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line) + 1;
    if (used + size > room) break;
    used += size;
    shown++;
  }
  return `${lines.slice(0, shown).join('\n')}${note(shown)}`;
}

/** Job summary and annotations; does nothing outside GitHub Actions. */
export async function writeGithub(markdown: string, results: readonly CheckResult[], opts: GithubOptions = {}): Promise<void> {
  const env = opts.env ?? process.env;
  if (!githubEnabled(env)) return;
  const summaryFile = env.GITHUB_STEP_SUMMARY;
  if (summaryFile) {
    // Earlier steps' text in the same summary file counts against the limit too.
    const before = await stat(summaryFile).then((s) => s.size, () => 0);
    await appendFile(summaryFile, `${fitStepSummary(markdown, SUMMARY_LIMIT - before - 1)}\n`);
  }
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const workspace = env.GITHUB_WORKSPACE && env.GITHUB_WORKSPACE.length > 0 ? env.GITHUB_WORKSPACE : process.cwd();
  for (const line of annotations(results, { workspace, expected: opts.expected })) write(line);
}
