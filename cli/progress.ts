/**
 * Progress for long runs, a pure consumer of run events: on a terminal, one live
 * line per cell (listr2); in CI or a pipe, plain timestamped lines on stderr.
 */
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { RunEvent, RunListener } from '../core/events.js';

interface CellTally {
  pass: number;
  fail: number;
  skip: number;
  error: number;
}

const tallyText = (t: CellTally) =>
  [`${t.pass} pass`, t.fail ? `${t.fail} fail` : '', t.error ? `${t.error} error` : '', t.skip ? `${t.skip} skip` : '']
    .filter(Boolean)
    .join(', ');

/** Plain lines: what CI logs keep. */
export function plainProgress(stream: NodeJS.WritableStream = process.stderr): RunListener {
  const started = Date.now();
  const tallies = new Map<string, CellTally>();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
  return (event: RunEvent) => {
    switch (event.type) {
      case 'run-start':
        stream.write(`${stamp()} run: ${event.cells.length} cells, suites ${event.suites.join(',')}\n`);
        break;
      case 'cell-start':
        tallies.set(event.cell, { pass: 0, fail: 0, skip: 0, error: 0 });
        stream.write(`${stamp()} ${event.cell}: start\n`);
        break;
      case 'phase':
        stream.write(`${stamp()} ${event.cell}: ${event.phase}${event.detail ? ` ${event.detail}` : ''}\n`);
        break;
      case 'check': {
        const t = tallies.get(event.result.cell);
        if (t) t[event.result.status] += 1;
        break;
      }
      case 'cell-end':
        stream.write(`${stamp()} ${event.cell}: ${event.ok ? 'done' : 'ended with errors'} in ${(event.durationMs / 1000).toFixed(1)}s (${tallyText(tallies.get(event.cell) ?? { pass: 0, fail: 0, skip: 0, error: 0 })})\n`);
        break;
      case 'log':
        stream.write(`${stamp()} ${event.level}: ${event.message}\n`);
        break;
      case 'run-end':
        if (event.interrupted) stream.write(`${stamp()} run: interrupted\n`);
        break;
    }
  };
}

type Task = ListrTaskWrapper<unknown, never, never>;

/** Live lines on a terminal: one task per cell, updated from the events. */
export function terminalProgress(): { listener: RunListener; done: Promise<void> } {
  const waiting = new Map<string, { task?: Task; resolve?: () => void; tally: CellTally; ended?: boolean; ok?: boolean }>();
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));
  const listener: RunListener = (event) => {
    switch (event.type) {
      case 'run-start': {
        for (const cell of event.cells) waiting.set(cell, { tally: { pass: 0, fail: 0, skip: 0, error: 0 } });
        const list = new Listr(
          event.cells.map((cell) => ({
            title: `${cell}: waiting`,
            task: (_ctx: unknown, task: Task) =>
              new Promise<void>((resolve, reject) => {
                const slot = waiting.get(cell)!;
                slot.task = task;
                slot.resolve = () => (slot.ok === false ? reject(new Error(`${cell}: ${tallyText(slot.tally)}`)) : resolve());
                if (slot.ended) slot.resolve();
              }),
          })),
          { concurrent: true, exitOnError: false },
        );
        list.run().catch(() => undefined).finally(finish);
        break;
      }
      case 'cell-start': {
        const slot = waiting.get(event.cell);
        if (slot?.task) slot.task.title = `${event.cell}: running`;
        break;
      }
      case 'phase': {
        const slot = waiting.get(event.cell);
        if (slot?.task) slot.task.title = `${event.cell}: ${event.phase}${event.detail ? ` ${event.detail}` : ''}`;
        break;
      }
      case 'check': {
        const slot = waiting.get(event.result.cell);
        if (slot) slot.tally[event.result.status] += 1;
        break;
      }
      case 'cell-end': {
        const slot = waiting.get(event.cell);
        if (!slot) break;
        slot.ended = true;
        slot.ok = event.ok;
        if (slot.task) slot.task.title = `${event.cell}: ${tallyText(slot.tally)} (${(event.durationMs / 1000).toFixed(1)}s)`;
        slot.resolve?.();
        break;
      }
      case 'run-end':
        // An interrupted run ends cells that never will: let the display finish.
        for (const [cell, slot] of waiting) {
          if (slot.ended) continue;
          slot.ended = true;
          if (slot.task) slot.task.title = `${cell}: ${event.interrupted ? 'interrupted' : 'not run'}`;
          slot.resolve?.();
        }
        break;
      default:
        break;
    }
  };
  return { listener, done };
}
