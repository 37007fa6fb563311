/**
 * The agent's own word on each policy: `tetra tracingpolicy list -o json`
 * (`{"policies":[{"name","namespace","state":"TP_STATE_*","error","enabled",...}]}`).
 * Older agents have no `state`: `enabled` and `error` decide then.
 */
import type { Reason } from '../../core/reasons.js';

export interface PolicyLoadState {
  name: string;
  namespace: string;
  state: string;
  error: string;
  raw: Record<string, unknown>;
}

export function parsePolicyList(text: string): PolicyLoadState[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  const doc = JSON.parse(trimmed) as { policies?: Array<Record<string, unknown>> };
  return (doc.policies ?? []).map((p) => {
    const enabled = p.enabled === true;
    const error = typeof p.error === 'string' ? p.error : '';
    const state = typeof p.state === 'string' ? p.state : error ? 'TP_STATE_LOAD_ERROR' : enabled ? 'TP_STATE_ENABLED' : 'TP_STATE_UNKNOWN';
    return { name: String(p.name ?? ''), namespace: String(p.namespace ?? ''), state, error, raw: p };
  });
}

/** The check a load state becomes: enabled passes, still loading is the machine's error, anything else fails with the agent's words. */
export function loadVerdict(state: PolicyLoadState | undefined): { status: 'pass' | 'fail' | 'error'; reason: Reason | null } {
  if (!state) return { status: 'fail', reason: 'load-error' };
  // Still loading when the guest's time was up: the machine was too slow, the policy is not at fault.
  if (state.state === 'TP_STATE_LOADING') return { status: 'error', reason: 'infra-boot-timeout' };
  if (state.state === 'TP_STATE_ENABLED') return { status: 'pass', reason: null };
  if (state.state === 'TP_STATE_PARTIALLY_ENABLED') return { status: 'fail', reason: 'partially-enabled' };
  return { status: 'fail', reason: 'load-error' };
}

/** The lines of the agent's log that say why it failed (level=error / fatal, or a Go panic). */
export function agentErrors(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /level=(error|fatal)|"level":"(error|fatal)"|^panic:|Failed to|failed to start/i.test(l))
    .slice(-8);
}
