/**
 * Reading a hook's own entry of the policy document (`spec.kprobes[3]`) from the
 * JSON path the hook carries: its selectors, its `ignore` options.
 */
import type { Hook, Policy } from './model.js';

export function hookSpec(policy: Pick<Policy, 'doc'>, hook: Pick<Hook, 'path'>): Record<string, unknown> | undefined {
  if (!hook.path) return undefined;
  // The path names the entry ("spec.tracepoints[0]") or the field that names the hook
  // ("spec.kprobes[0].call"), whose parent is the entry.
  const parts = hook.path.replace(/\[(\d+)\]/g, '.$1').split('.');
  const isEntry = (n: unknown): n is Record<string, unknown> => !!n && typeof n === 'object' && !Array.isArray(n);
  let node: unknown = policy.doc;
  let parent: unknown;
  for (const part of parts) {
    parent = node;
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  return isEntry(node) ? node : isEntry(parent) ? parent : undefined;
}

/** A hook behind selectors exports only the hits they let through. */
export function hasSelectors(policy: Pick<Policy, 'doc'>, hook: Pick<Hook, 'path'>): boolean {
  return specHasSelectors(hookSpec(policy, hook));
}

/** Does a hook's spec (hookSpec) carry at least one selector? */
export function specHasSelectors(spec: Record<string, unknown> | undefined): boolean {
  const selectors = spec?.selectors;
  return Array.isArray(selectors) && selectors.length > 0;
}

/** `ignore: {callNotFound: true}`: the agent skips this call where the kernel lacks it. */
export function ignoresMissingCall(policy: Pick<Policy, 'doc'>, hook: Pick<Hook, 'path'>): boolean {
  const ignore = hookSpec(policy, hook)?.ignore as Record<string, unknown> | undefined;
  return ignore?.callNotFound === true;
}

/** The value of `spec.options[name=...]`, as written, if the policy sets it. */
export function specOption(policy: Pick<Policy, 'doc'>, name: string): string | undefined {
  const options = (policy.doc.spec as { options?: unknown } | undefined)?.options;
  const option = Array.isArray(options) ? (options as unknown[]).find((o) => (o as { name?: unknown } | null)?.name === name) : undefined;
  const value = (option as { value?: unknown } | undefined)?.value;
  return typeof value === 'string' ? value : undefined;
}
