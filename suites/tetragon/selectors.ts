/**
 * Whether a hook's selectors can let an expected event through, decided from the
 * policy text alone. Only what is certain is decided: an expectation that pins a
 * string argument (`equals`) against a string comparison in `matchArgs` (Equal,
 * Prefix, Postfix and their Not forms). Anything else may pass, and then the
 * events themselves decide (see index.ts). Tetragon's semantics: selectors are
 * alternatives, the matchArgs entries of one selector all have to hold, and one
 * entry holds when any of its values does.
 */
import type { ArgPredicate, ExpectedEvent } from '../triggers/model.js';

/** The exported key of each string-carrying argument type (the event's `args[i]`). */
const ARG_KEY: Record<string, string> = {
  file: 'file_arg',
  path: 'path_arg',
  string: 'string_arg',
  linux_binprm: 'linux_binprm_arg',
};

type Spec = Record<string, unknown>;

interface MatchArg {
  index?: number;
  operator?: string;
  values?: unknown[];
}

function pinnedValues(expected: ExpectedEvent, key: string): string[] {
  const args: ArgPredicate[] = 'args' in expected && expected.args ? expected.args : [];
  return args.flatMap((a) => {
    const path = a.path ?? '';
    return typeof a.equals === 'string' && (path === key || path.startsWith(`${key}.`)) ? [a.equals] : [];
  });
}

function holds(operator: string, values: string[], value: string): boolean | undefined {
  switch (operator) {
    case 'Equal': return values.includes(value);
    case 'NotEqual': return !values.includes(value);
    case 'Prefix': return values.some((v) => value.startsWith(v));
    case 'NotPrefix': return !values.some((v) => value.startsWith(v));
    case 'Postfix': return values.some((v) => value.endsWith(v));
    case 'NotPostfix': return !values.some((v) => value.endsWith(v));
    default: return undefined;
  }
}

/** false only when this matchArgs entry certainly rejects the expected event. */
function entryMayHold(spec: Spec, entry: MatchArg, expected: ExpectedEvent): boolean {
  const args = Array.isArray(spec.args) ? (spec.args as Array<{ index?: number; type?: string }>) : [];
  const type = args.find((a) => (a.index ?? 0) === (entry.index ?? 0))?.type;
  const key = type ? ARG_KEY[type] : undefined;
  if (!key || !entry.operator || !Array.isArray(entry.values)) return true;
  const values = entry.values.filter((v): v is string => typeof v === 'string');
  // Every pinned value must fail for a certain rejection (the predicate may name any argument).
  const verdicts = pinnedValues(expected, key).map((v) => holds(entry.operator!, values, v));
  return verdicts.length === 0 || verdicts.some((v) => v !== false);
}

/** Can some selector of the hook let the expected event through? */
export function selectorsMayPass(spec: Spec | undefined, expected: ExpectedEvent): boolean {
  const selectors = spec?.selectors;
  if (!Array.isArray(selectors) || selectors.length === 0) return true;
  return selectors.some((selector: { matchArgs?: MatchArg[] }) =>
    (selector.matchArgs ?? []).every((entry) => entryMayHold(spec!, entry, expected)),
  );
}
