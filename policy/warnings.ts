/**
 * Lint warnings: what is valid in a policy and yet does not reach the agent as written.
 * Unlike portability findings they depend on no arch; like them they never fail lint.
 */
import type { FieldPath, Position } from '../core/yaml-input.js';
import { hookWarnings } from './hooks.js';
import type { Policy, PolicyWarning } from './model.js';

type Locate = (path: FieldPath, at?: 'value' | 'key') => Position;

/**
 * The warnings of one policy; `locate` places a JSON path in its file. A cluster-scoped
 * TracingPolicy with `metadata.namespace`: `kubectl apply` drops the namespace (the API
 * server does for every cluster-scoped object) and the policy applies cluster-wide, while
 * the agent's own API (`tetra tracingpolicy add`) refuses the document outright.
 */
export function policyWarnings(policy: Pick<Policy, 'kind' | 'doc' | 'hooks' | 'source'>, locate: Locate): PolicyWarning[] {
  const out: PolicyWarning[] = [];
  const metadata = policy.doc.metadata as Record<string, unknown> | undefined;
  if (policy.kind === 'TracingPolicy' && metadata && typeof metadata.namespace === 'string') {
    const at = locate(['metadata', 'namespace'], 'key');
    out.push({
      code: 'namespace-on-cluster-scoped',
      message: "cluster-scoped TracingPolicy: kubectl drops metadata.namespace; the agent's API refuses it",
      path: 'metadata.namespace',
      line: at.line,
      column: at.column,
    });
  }
  // What a policy attaches to: a kprobe whose `syscall` the CRD default decides, or nothing at all.
  out.push(...hookWarnings(policy));
  return out;
}
