/**
 * The one error printer (cli/errors.ts) and the one exit-code map (core/errors.ts).
 */
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { describeError, formatError, reportError } from '../../cli/errors.js';
import { BpfgateError, EXIT, InfraError, InputError, exitCodeOf } from '../../core/errors.js';

function report(error: unknown): { code: number; text: string } {
  const chunks: string[] = [];
  const code = reportError(error, { write: (t: string) => chunks.push(t) });
  return { code, text: chunks.join('') };
}

describe('the error printer', () => {
  it('prints bad input as one line: file, line, column, what was expected, code; exit 2', () => {
    const err = new InputError('matrix-schema', '/repo/matrix.yaml', { line: 4, column: 12, field: 'kernels[0].pages' }, 'kernels[0].pages: expected one of: 4k, 16k, 64k (got 16)');
    expect(report(err)).toEqual({ code: 2, text: 'bpfgate: /repo/matrix.yaml:4:12: kernels[0].pages: expected one of: 4k, 16k, 64k (got 16) [matrix-schema]\n' });
    expect([err.field, err.detail]).toEqual(['kernels[0].pages', 'kernels[0].pages: expected one of: 4k, 16k, 64k (got 16)']);
  });

  it('prints a file-level input error without a position', () => {
    const err = new InputError('lockfile-missing', 'bpfgate.lock.json', {}, 'cannot read the lock file: ENOENT');
    expect(report(err)).toEqual({ code: 2, text: 'bpfgate: bpfgate.lock.json: cannot read the lock file: ENOENT [lockfile-missing]\n' });
  });

  it('prints an infrastructure error as one line with its code; exit 3', () => {
    const err = new InfraError('infra-download', 'cannot download schema https://example.invalid/crd.yaml: fetch failed', new Error('ENOTFOUND'));
    expect(report(err)).toEqual({ code: 3, text: 'bpfgate: cannot download schema https://example.invalid/crd.yaml: fetch failed [infra-download]\n' });
  });

  it('keeps a known error on one line even when its message has line breaks', () => {
    expect(formatError(new BpfgateError('usage', 'first\n  second'))).toBe('bpfgate: first second [usage]');
  });

  it('prints anything else as a bug, with its stack; exit 3', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'kind')");
    const { code, text } = report(bug);
    expect(code).toBe(3);
    const [first, ...stack] = text.trimEnd().split('\n');
    expect(first).toBe("bpfgate: internal error (a bug): Cannot read properties of undefined (reading 'kind')");
    expect(stack[0]).toBe(`TypeError: Cannot read properties of undefined (reading 'kind')`);
    expect(stack.slice(1).every((l) => l.trimStart().startsWith('at '))).toBe(true);
    expect(report('a string thrown').text).toBe('bpfgate: internal error (a bug): a string thrown\n');
  });

  it('leaves a usage error to commander (already printed) and exits 2; --help and --version exit 0', () => {
    expect(report(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--bogus'"))).toEqual({ code: 2, text: '' });
    expect(report(new CommanderError(0, 'commander.version', '0.1.0'))).toEqual({ code: 0, text: '' });
    expect(formatError(new CommanderError(1, 'commander.missingArgument', "error: missing required argument 'paths'"))).toBe("bpfgate: missing required argument 'paths' [usage]");
  });

  it('describes an error for a progress line that goes on, without the prefix', () => {
    expect(describeError(new InfraError('infra-download', 'HTTP 404'))).toBe('HTTP 404 [infra-download]');
    expect(describeError(new Error('boom'))).toMatch(/^internal error \(a bug\): boom\nError: boom\n\s+at /);
  });
});

describe('the exit-code map', () => {
  it('is the README\'s: 0 ok, 1 unexpected failure, 2 bad input, 3 infrastructure', () => {
    expect(EXIT).toEqual({ ok: 0, unexpectedFailure: 1, badInput: 2, infrastructure: 3 });
    expect(exitCodeOf(new InputError('x', 'f', {}, 'm'))).toBe(2);
    expect(exitCodeOf(new BpfgateError('usage', 'm'))).toBe(2);
    expect(exitCodeOf(new InfraError('infra-boot-timeout', 'm'))).toBe(3);
    expect(exitCodeOf(new RangeError('bug'))).toBe(3);
  });
});
