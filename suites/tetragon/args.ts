/**
 * Agent arguments from the command line to the guest. `--tetragon-args` is one string
 * split the way a POSIX shell splits words (quotes and backslashes, no expansion), so
 * `--export-allowlist '{"event_set":["PROCESS_EXEC"]}'` stays one argument; the guest
 * gets them one per line (suites/tetragon/guest/tetragon.sh builds the argv from them).
 */

/**
 * Shell-like word splitting: blanks separate words; '…' is literal; "…" is literal but
 * for \" \\ \$ \` and a backslash-newline; outside quotes a backslash keeps the next
 * character. No variables, globs or command substitution. Throws on an unterminated
 * quote, and on an argument with a newline (the guest reads one argument per line).
 */
export function splitArgs(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`agent arguments: ${why} in ${JSON.stringify(text)}`);
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) fail(`unterminated ' at column ${i + 1}`);
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= text.length) fail(`unterminated " at column ${i + 1}`);
        const d = text[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < text.length && '"\\$`\n'.includes(text[j + 1]!)) {
          if (text[j + 1] !== '\n') word += text[j + 1];
          j += 2;
        } else {
          word += d;
          j++;
        }
      }
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 < text.length && text[i + 1] !== '\n') word += text[i + 1];
      i += 2;
    } else {
      word += c;
      i++;
    }
  }
  if (inWord) words.push(word);
  const bad = words.find((w) => w.includes('\n'));
  if (bad !== undefined) fail(`${JSON.stringify(bad)} contains a newline, which the guest cannot pass on`);
  return words;
}

/** The guest's args file: one argument per line; empty arguments cannot be expressed and are dropped. */
export function argsFile(args: readonly string[]): string {
  const bad = args.find((a) => a.includes('\n'));
  if (bad !== undefined) throw new Error(`agent argument ${JSON.stringify(bad)} contains a newline: the guest reads one argument per line`);
  return args.filter((a) => a !== '').map((a) => `${a}\n`).join('');
}
