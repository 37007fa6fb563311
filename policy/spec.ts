/**
 * Reading a hook's own entry of the policy document (`spec.kprobes[3]`) from the
 * JSON path the hook carries: its selectors, its `ignore` options.
 */
import type { Hook, Policy } from './model.js';

export function hookSpec(policy: Pick<Policy, 'doc'>, hook: Pick<Hook, 'path'>): Record<string, unknown> | undefined {
  if (!hook.path) return undefined;
  let node: unknown = policy.doc;
  // The path names the node that names the hook ("spec.kprobes[0].call"); its parent is the entry.
  for (const part of hook.path.replace(/\[(\d+)\]/g, '.$1').split('.').slice(0, -1)) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  return node && typeof node === 'object' && !Array.isArray(node) ? (node as Record<string, unknown>) : undefined;
}

/** `ignore: {callNotFound: true}`: the agent skips this call where the kernel lacks it. */
export function ignoresMissingCall(policy: Pick<Policy, 'doc'>, hook: Pick<Hook, 'path'>): boolean {
  const ignore = hookSpec(policy, hook)?.ignore as Record<string, unknown> | undefined;
  return ignore?.callNotFound === true;
}
