/**
 * `bpfgate triggers list`: the ATT&CK trigger catalogue (or a directory of a user's
 * own triggers) as a text table or as JSON, sorted by tactic in kill-chain order,
 * then technique, then id. It only reads and prints: nothing here runs a trigger.
 * Returns the exit code: 0, or the error's exit class (2 for a bad catalogue),
 * after printing a known error on one line through the CLI's one printer.
 */
import { BpfgateError } from '../../core/errors.js';
import { reportError } from '../errors.js';
import { loadTriggerCatalogue, TRIGGER_CATALOGUE_DIR } from '../../suites/triggers/load.js';
import { TACTICS, type Trigger } from '../../suites/triggers/model.js';

/** Where the command writes: process.stdout / process.stderr by default, a buffer in tests. */
export interface TextSink {
  write(text: string): unknown;
}

export interface TriggersOptions {
  format?: 'text' | 'json';
  /** A directory of trigger files instead of the shipped catalogue. */
  dir?: string;
  out?: TextSink;
  err?: TextSink;
}

export type TriggersSubcommand = 'list';

export async function triggersCommand(sub: TriggersSubcommand, opts: TriggersOptions = {}): Promise<number> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  if (sub !== 'list') return reportError(new BpfgateError('usage', `triggers: unknown subcommand "${String(sub)}"; expected: list`), err);
  const dir = opts.dir ?? TRIGGER_CATALOGUE_DIR;
  let triggers: Trigger[];
  try {
    triggers = sortTriggers(await loadTriggerCatalogue(dir));
  } catch (e) {
    if (!(e instanceof BpfgateError)) throw e;
    return reportError(e, err);
  }
  out.write(opts.format === 'json' ? `${JSON.stringify(catalogueJson(dir, triggers), null, 2)}\n` : catalogueTable(triggers));
  return 0;
}

/** Kill-chain order of tactics, then technique id (T1003.008 < T1005 < T1059 < T1059.004), then id. */
export function sortTriggers(triggers: readonly Trigger[]): Trigger[] {
  const rank = (t: Trigger) => TACTICS.indexOf(t.tactic);
  return [...triggers].sort((a, b) => rank(a) - rank(b) || compare(a.technique, b.technique) || compare(a.id, b.id));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function catalogueJson(dir: string, triggers: readonly Trigger[]) {
  return {
    catalogue: dir,
    count: triggers.length,
    techniques: new Set(triggers.map((t) => t.technique)).size,
    tactics: TACTICS.filter((tactic) => triggers.some((t) => t.tactic === tactic)),
    triggers: triggers.map((t) => ({
      id: t.id,
      technique: t.technique,
      name: t.name,
      tactic: t.tactic,
      description: t.description,
      marker: t.marker,
      hooks: t.hooks,
      expect: t.expect,
      steps: t.steps,
      cleanup: t.cleanup,
      file: t.file,
    })),
  };
}

function catalogueTable(triggers: readonly Trigger[]): string {
  const header = ['ID', 'TECHNIQUE', 'TACTIC', 'NAME', 'HOOKS'];
  const rows = triggers.map((t) => [t.id, t.technique, t.tactic, t.name, t.hooks.join(',')]);
  // The last column is not padded: hook lists are long and trailing spaces help nobody.
  const widths = header.slice(0, -1).map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i] ?? 0) : c)).join('  ');
  const techniques = new Set(triggers.map((t) => t.technique)).size;
  const tactics = new Set(triggers.map((t) => t.tactic)).size;
  const footer = `${triggers.length} triggers, ${techniques} techniques, ${tactics} tactics`;
  return `${[line(header), ...rows.map(line)].join('\n')}\n\n${footer}\n`;
}
