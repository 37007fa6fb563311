/**
 * Run events. Runners and suites emit them; the result store, the progress
 * display and the reporters only consume them. Nobody else writes to the terminal.
 */
import type { CheckResult } from './check.js';

export type RunEvent =
  | { type: 'run-start'; cells: string[]; suites: string[] }
  | { type: 'cell-start'; cell: string }
  | { type: 'phase'; cell: string; phase: string; detail?: string }
  | { type: 'check'; result: CheckResult }
  | { type: 'cell-end'; cell: string; ok: boolean; durationMs: number }
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'run-end'; counts: Record<string, number>; interrupted: boolean };

export type RunListener = (event: RunEvent) => void;

/** A tiny synchronous fan-out: listeners run in order, so the store writes before the display draws. */
export class EventBus {
  private readonly listeners: RunListener[] = [];
  on(listener: RunListener): this {
    this.listeners.push(listener);
    return this;
  }
  emit(event: RunEvent): void {
    for (const l of this.listeners) l(event);
  }
}
