/**
 * The static suite: what can be said of each policy on each cell without booting
 * anything. Schema validity, portability of its symbols to the cell's arch, and
 * the kernel features it needs, predicted from the cell's facts (its kernel config
 * and the LSM list its boot parameters give). A prediction is labelled as one in the
 * evidence: only the live lanes can show that a hook fires.
 */
import { REASONS, type Reason } from '../core/reasons.js';
import type { CheckDraft } from '../core/check.js';
import type { CellFacts } from '../core/facts.js';
import type { CellContext, StaticSuite } from '../core/suite.js';
import type { Need, Policy } from '../policy/model.js';
import { portabilityFindings } from '../policy/syscalls.js';
import { fileSubject } from '../policy/subjects.js';

function enabled(config: ReadonlyMap<string, string>, option: string): boolean | undefined {
  if (config.size === 0) return undefined;
  const v = config.get(option);
  return v === 'y' || v === 'm';
}

interface Prediction {
  reason: Reason;
  need: Need;
  why: string;
}

/** The first need the cell cannot meet, or undefined; `unknown` lists needs nothing could be said of. */
export function predictNeeds(policy: Policy, facts: Readonly<CellFacts>, config: ReadonlyMap<string, string>): { failure?: Prediction; unknown: string[] } {
  const unknown: string[] = [];
  const trampolines = enabled(config, 'CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS');
  for (const need of policy.needs) {
    switch (need.feature) {
      case 'bpf-lsm': {
        const built = enabled(config, 'CONFIG_BPF_LSM');
        if (built === false) return { failure: { reason: 'lsm-unsupported', need, why: 'CONFIG_BPF_LSM is not set' }, unknown };
        if (facts.lsm.length > 0 && !facts.lsm.includes('bpf')) {
          const given = facts.bootArgs.find((a) => a.startsWith('lsm='));
          const from = given ? `the cell boots with ${given}` : `CONFIG_LSM=${config.get('CONFIG_LSM') ?? ''}`;
          return { failure: { reason: 'lsm-inactive', need, why: `${from}: the active LSMs are ${facts.lsm.join(',')}, without bpf` }, unknown };
        }
        if (built === undefined) unknown.push(need.feature);
        break;
      }
      case 'trampoline':
        if (trampolines === false) {
          return { failure: { reason: 'trampoline-unsupported', need, why: 'CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS is not set: attach fails with 524' }, unknown };
        }
        if (trampolines === undefined) unknown.push(need.feature);
        break;
      case 'override': {
        // fmod_ret (security_* functions) rides on trampolines, checked by the 'trampoline' need;
        // bpf_override_return needs error injection compiled in.
        if (need.via === 'fmod-ret') break;
        const injection = enabled(config, 'CONFIG_FUNCTION_ERROR_INJECTION');
        if (injection === false) {
          return { failure: { reason: 'override-unsupported', need, why: 'CONFIG_FUNCTION_ERROR_INJECTION is not set: bpf_override_return is refused' }, unknown };
        }
        if (injection === undefined) unknown.push(need.feature);
        break;
      }
      default:
        break;
    }
  }
  return { unknown };
}

function schemaCheck(policy: Policy, ctx: CellContext): CheckDraft {
  const problems = ctx.policyProblems.get(policy) ?? [];
  const errors = problems.map((p) => ({ line: p.line, column: p.column, path: p.path, schemaPath: p.schemaPath, message: p.message }));
  const first = problems[0];
  return {
    subject: ctx.subjects.get(policy) ?? policy.name,
    check: 'schema',
    status: problems.length ? 'fail' : 'pass',
    reason: first ? first.reason : null,
    evidence: problems.length ? { errors } : { kind: policy.kind },
    durationMs: 0,
    source: first ? { file: first.file, line: first.line, column: first.column } : policy.source,
  };
}

function portabilityCheck(policy: Policy, ctx: CellContext): CheckDraft {
  if (policy.hooks.length === 0) {
    // Nothing to port: a policy without a hook attaches nothing on any arch.
    return {
      subject: ctx.subjects.get(policy) ?? policy.name,
      check: 'portability',
      status: 'fail',
      reason: 'no-hooks',
      evidence: { arch: ctx.cell.arch, hooks: 0, why: REASONS['no-hooks'] },
      durationMs: 0,
      source: policy.source,
    };
  }
  const findings = portabilityFindings(policy, [ctx.cell.arch]);
  const first = findings[0];
  return {
    subject: ctx.subjects.get(policy) ?? policy.name,
    check: 'portability',
    status: first ? 'fail' : 'pass',
    reason: first ? first.reason : null,
    evidence: first
      ? { arch: ctx.cell.arch, findings: findings.map((f) => ({ hook: f.hook, line: f.source.line, message: f.message })) }
      : { arch: ctx.cell.arch, hooks: policy.hooks.length },
    durationMs: 0,
    source: first ? first.source : policy.source,
  };
}

function needsCheck(policy: Policy, ctx: CellContext): CheckDraft {
  const { failure, unknown } = predictNeeds(policy, ctx.facts, ctx.config);
  const subject = ctx.subjects.get(policy) ?? policy.name;
  const needs = [...new Set(policy.needs.map((n) => n.feature))];
  if (failure) {
    return {
      subject,
      check: 'needs',
      status: 'fail',
      reason: failure.reason,
      evidence: { predicted: true, need: failure.need.feature, because: failure.need.because, why: failure.why },
      durationMs: 0,
      source: failure.need.source,
    };
  }
  return {
    subject,
    check: 'needs',
    status: 'pass',
    reason: null,
    evidence: {
      predicted: true,
      needs,
      ...(unknown.length ? { unknown, note: 'the cell\'s kernel config could not be read (see its facts in run.json)' } : {}),
    },
    durationMs: 0,
    source: policy.source,
  };
}

/** Files that are not valid YAML have no policy: they are reported once per cell under their path relative to their --policies root. */
function yamlChecks(ctx: CellContext): CheckDraft[] {
  return ctx.fileProblems
    .map((p) => ({
      subject: fileSubject(p),
      check: 'yaml',
      status: 'fail' as const,
      reason: 'yaml-invalid' as const,
      evidence: { line: p.line, column: p.column, message: p.message },
      durationMs: 0,
      source: { file: p.file, line: p.line, column: p.column },
    }));
}

export const staticSuite: StaticSuite = {
  kind: 'static',
  name: 'static',
  lane: 'static',
  run(ctx) {
    const out: CheckDraft[] = yamlChecks(ctx);
    for (const policy of ctx.policies) {
      const schema = schemaCheck(policy, ctx);
      out.push(schema);
      if (schema.status !== 'pass') continue; // an invalid document says nothing reliable about hooks
      out.push(portabilityCheck(policy, ctx), needsCheck(policy, ctx));
    }
    return out;
  },
};
