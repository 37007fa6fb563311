/**
 * The small part of CEL that CRD validation rules (`x-kubernetes-validations`) use in the
 * TracingPolicy CRD: `self`, field selection, `has(self.f)`, `!`, `&&`, `||`, parentheses and
 * the literals true/false. The API server evaluates these rules after the schema; bpfgate does
 * the same so a policy that kubectl would reject is rejected here too.
 *
 * Invariant: a rule outside this subset is never guessed at. compileRule() returns undefined
 * for it, and the caller reports the rule as not evaluated rather than as passed or failed.
 */

type Expr =
  | { op: 'lit'; value: boolean }
  | { op: 'self' }
  | { op: 'field'; of: Expr; name: string }
  | { op: 'has'; of: Expr; name: string }
  | { op: 'not'; arg: Expr }
  | { op: 'and' | 'or'; left: Expr; right: Expr };

/** A compiled rule: true when `self` satisfies it. */
export type CelRule = (self: unknown) => boolean;

const TOKEN = /\s*(\|\||&&|[!().]|[A-Za-z_][A-Za-z0-9_]*)/y;

/** Compiles a rule in the supported subset, or returns undefined when it uses anything else. */
export function compileRule(source: string): CelRule | undefined {
  const tokens = tokenize(source);
  if (!tokens) return undefined;
  let pos = 0;
  const peek = (): string | undefined => tokens[pos];
  const take = (expected?: string): string => {
    const t = tokens[pos];
    if (t === undefined || (expected !== undefined && t !== expected)) throw new SyntaxError(`expected ${expected ?? 'a token'}`);
    pos++;
    return t;
  };
  const or = (): Expr => {
    let left = and();
    while (peek() === '||') {
      take();
      left = { op: 'or', left, right: and() };
    }
    return left;
  };
  const and = (): Expr => {
    let left = unary();
    while (peek() === '&&') {
      take();
      left = { op: 'and', left, right: unary() };
    }
    return left;
  };
  const unary = (): Expr => {
    if (peek() === '!') {
      take();
      return { op: 'not', arg: unary() };
    }
    return member();
  };
  const member = (): Expr => {
    let e = primary();
    while (peek() === '.') {
      take();
      e = { op: 'field', of: e, name: identifier() };
    }
    return e;
  };
  const identifier = (): string => {
    const t = take();
    if (!/^[A-Za-z_]/.test(t)) throw new SyntaxError(`expected a field name, got ${t}`);
    return t;
  };
  const primary = (): Expr => {
    const t = take();
    if (t === '(') {
      const e = or();
      take(')');
      return e;
    }
    if (t === 'true' || t === 'false') return { op: 'lit', value: t === 'true' };
    if (t === 'self') return { op: 'self' };
    if (t === 'has') {
      // has() takes exactly one field selection: has(x.f).
      take('(');
      const arg = member();
      take(')');
      if (arg.op !== 'field') throw new SyntaxError('has() needs a field selection');
      return { op: 'has', of: arg.of, name: arg.name };
    }
    throw new SyntaxError(`unsupported token ${t}`);
  };
  try {
    const expr = or();
    if (pos !== tokens.length) return undefined;
    return (self) => evaluate(expr, self) === true;
  } catch {
    return undefined;
  }
}

function tokenize(source: string): string[] | undefined {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    if (/^\s*$/.test(source.slice(TOKEN.lastIndex))) break;
    const m = TOKEN.exec(source);
    if (!m) return undefined;
    tokens.push(m[1]!);
  }
  return tokens;
}

function evaluate(e: Expr, self: unknown): unknown {
  switch (e.op) {
    case 'lit':
      return e.value;
    case 'self':
      return self;
    case 'field': {
      const of = evaluate(e.of, self);
      return isObject(of) ? of[e.name] : undefined;
    }
    case 'has': {
      const of = evaluate(e.of, self);
      return isObject(of) && Object.hasOwn(of, e.name);
    }
    case 'not':
      return evaluate(e.arg, self) !== true;
    case 'and':
      return evaluate(e.left, self) === true && evaluate(e.right, self) === true;
    case 'or':
      return evaluate(e.left, self) === true || evaluate(e.right, self) === true;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
