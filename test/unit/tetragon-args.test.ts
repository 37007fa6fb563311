/** Agent arguments keep their quoting from `--tetragon-args` to the guest's args file. */
import { describe, expect, it } from 'vitest';
import { argsFile, splitArgs } from '../../suites/tetragon/args.js';

describe('splitting --tetragon-args like a shell', () => {
  it('keeps a quoted JSON allowlist one argument', () => {
    expect(splitArgs(`--disable-kprobe-multi --export-allowlist '{"event_set":["PROCESS_EXEC"]}'`)).toEqual([
      '--disable-kprobe-multi',
      '--export-allowlist',
      '{"event_set":["PROCESS_EXEC"]}',
    ]);
  });

  it('reads double quotes, backslashes and words glued to quotes as a POSIX shell does', () => {
    expect(splitArgs(String.raw`  --a="x y"  "\"q\" \$HOME" a\ b 'it''s' ""  `)).toEqual(['--a=x y', '"q" $HOME', 'a b', 'its', '']);
    expect(splitArgs(String.raw`"c:\dir"`)).toEqual([String.raw`c:\dir`]);
    expect(splitArgs('')).toEqual([]);
  });

  it('refuses an unterminated quote and an argument with a newline, saying which', () => {
    expect(() => splitArgs(`--export-allowlist '{"event_set"`)).toThrow(/unterminated ' at column 20/);
    expect(() => splitArgs('--a "b')).toThrow(/unterminated " at column 5/);
    expect(() => splitArgs("'a\nb'")).toThrow(/contains a newline/);
  });
});

describe('the guest args file', () => {
  it('holds one argument per line, spaces and quotes as they are', () => {
    expect(argsFile(['--export-allowlist', '{"event_set": ["PROCESS_EXEC"]}', '', '--enable-policy-filter'])).toBe(
      '--export-allowlist\n{"event_set": ["PROCESS_EXEC"]}\n--enable-policy-filter\n',
    );
    expect(argsFile([])).toBe('');
    expect(() => argsFile(['a\nb'])).toThrow(/one argument per line/);
  });
});
