/**
 * Errors with a stable code and the exit code class the CLI maps them to.
 * The CLI prints a BpfgateError on one line; anything else with its stack.
 */

/** 2 = bad input (usage, matrix, policy files); 3 = infrastructure. */
export type ExitClass = 2 | 3;

export class BpfgateError extends Error {
  readonly code: string;
  readonly exit: ExitClass;
  constructor(code: string, message: string, opts: { exit?: ExitClass; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BpfgateError';
    this.code = code;
    this.exit = opts.exit ?? 2;
  }
}

/** A positioned problem in an input file: which file, which line, what was expected. */
export class InputError extends BpfgateError {
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(code: string, file: string, position: { line?: number; column?: number }, message: string, cause?: unknown) {
    const where = position.line === undefined ? file : `${file}:${position.line}:${position.column ?? 1}`;
    super(code, `${where}: ${message}`, { exit: 2, cause });
    this.name = 'InputError';
    this.file = file;
    this.line = position.line;
    this.column = position.column;
  }
}

/** The machine cannot do what was asked: a tool is missing, a download failed, a VM never booted. */
export class InfraError extends BpfgateError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { exit: 3, cause });
    this.name = 'InfraError';
  }
}
