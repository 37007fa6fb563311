/**
 * Errors with a stable code, and the one map from outcomes to exit codes.
 * The CLI prints a BpfgateError on one line (cli/errors.ts), anything else, a bug,
 * with its stack. Invariant: every exit code bpfgate returns comes from EXIT.
 */

/** The exit codes the README promises; nothing else is ever returned. */
export const EXIT = {
  /** Every check ended as expected (or the command had nothing to judge). */
  ok: 0,
  /** A check failed that the baseline does not expect (lint: a policy is invalid). */
  unexpectedFailure: 1,
  /** Bad input: usage, matrix, policy, trigger, config, baseline, lock or results files. */
  badInput: 2,
  /** The machine could not do what was asked: a download, a boot, a missing tool. A bug is reported here too. */
  infrastructure: 3,
} as const;

/** 2 = bad input (usage, input files); 3 = infrastructure. */
export type ExitClass = typeof EXIT.badInput | typeof EXIT.infrastructure;

export class BpfgateError extends Error {
  readonly code: string;
  readonly exit: ExitClass;
  constructor(code: string, message: string, opts: { exit?: ExitClass; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BpfgateError';
    this.code = code;
    this.exit = opts.exit ?? EXIT.badInput;
  }
}

/** Where in an input file a problem is: line and column (1-based), and the field path when one is known. */
export interface InputLocation {
  line?: number;
  column?: number;
  /** The field path, `kernels[0].debian.suite`; absent for the file as a whole. */
  field?: string;
}

/**
 * A positioned problem in an input file: which file, which line and column, which
 * field, and what was expected. `message` is `file:line:col: detail`.
 */
export class InputError extends BpfgateError {
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly field: string | undefined;
  /** The message without its `file:line:col: ` prefix: what was expected. */
  readonly detail: string;
  constructor(code: string, file: string, location: InputLocation, message: string, cause?: unknown) {
    const where = location.line === undefined ? file : `${file}:${location.line}:${location.column ?? 1}`;
    super(code, `${where}: ${message}`, { exit: EXIT.badInput, cause });
    this.name = 'InputError';
    this.file = file;
    this.line = location.line;
    this.column = location.line === undefined ? location.column : (location.column ?? 1);
    this.field = location.field;
    this.detail = message;
  }
}

/** The machine cannot do what was asked: a tool is missing, a download failed, a VM never booted. */
export class InfraError extends BpfgateError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { exit: EXIT.infrastructure, cause });
    this.name = 'InfraError';
  }
}

/** The exit code of an error: its class for a BpfgateError, infrastructure for anything else (a bug). */
export function exitCodeOf(error: unknown): number {
  return error instanceof BpfgateError ? error.exit : EXIT.infrastructure;
}
