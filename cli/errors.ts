/**
 * The one error printer of the command line. Every command's errors reach the user
 * through it, on stderr, the same way:
 *   bpfgate: <file>:<line>:<col>: <field>: <what was expected> [code]   an InputError
 *   bpfgate: <message> [code]                                         any other BpfgateError
 *   bpfgate: <message> [usage]                                        a command-line usage error
 *   bpfgate: internal error (a bug): <message>                        anything else, then its stack
 * and its exit code comes from the one map in core/errors.ts (EXIT).
 * Invariant: a known error is one line; only a bug prints a stack.
 */
import { CommanderError } from 'commander';
import { BpfgateError, EXIT, exitCodeOf } from '../core/errors.js';

/** Somewhere to print: process.stderr, or a buffer in tests. */
export interface ErrorSink {
  write(text: string): unknown;
}

/** The line (a bug: the lines) that reports `error`, without the trailing newline. */
export function formatError(error: unknown): string {
  if (error instanceof BpfgateError) return `bpfgate: ${oneLine(error.message)} [${error.code}]`;
  if (error instanceof CommanderError) return `bpfgate: ${usageMessage(error.message)} [usage]`;
  const text = error instanceof Error ? error.message : String(error);
  const stack = error instanceof Error && error.stack ? `\n${error.stack}` : '';
  return `bpfgate: internal error (a bug): ${text}${stack}`;
}

/**
 * The error for a progress line of a command that goes on after it (`error <kernel>: ...`):
 * what formatError says, without the `bpfgate: ` prefix; a bug still brings its stack.
 */
export function describeError(error: unknown): string {
  return formatError(error).slice('bpfgate: '.length);
}

/** Print `error` on `sink` and return the exit code the CLI ends with. */
export function reportError(error: unknown, sink: ErrorSink = process.stderr): number {
  if (error instanceof CommanderError) {
    // Commander printed its own message already (see `usageOutput`); --help and --version end here with 0.
    return error.exitCode === 0 ? EXIT.ok : EXIT.badInput;
  }
  sink.write(`${formatError(error)}\n`);
  return exitCodeOf(error);
}

/**
 * Commander's output settings, so a usage error is printed as the printer prints any other
 * error, before the hint commander adds after it.
 */
export function usageOutput(sink: ErrorSink = process.stderr): { outputError: (text: string, write: (text: string) => void) => void; writeErr: (text: string) => void } {
  return {
    outputError: (text, write) => write(`bpfgate: ${usageMessage(text)} [usage]\n`),
    writeErr: (text) => void sink.write(text),
  };
}

/** Commander's "error: unknown option '--x'" without its prefix and newline. */
function usageMessage(text: string): string {
  return oneLine(text.trim().replace(/^error: /, ''));
}

/** A message that holds line breaks (a parser's excerpt) would break the one-line promise. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
