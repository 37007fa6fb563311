/**
 * The subject name of a policy in results, tables and baselines: its metadata
 * name, made unique with its file path only when two files use the same name.
 */
import { relative } from 'node:path';
import type { Policy } from '../policy/model.js';

export function policySubjects(policies: Policy[], root = process.cwd()): Map<Policy, string> {
  const count = new Map<string, number>();
  for (const p of policies) count.set(p.name, (count.get(p.name) ?? 0) + 1);
  const out = new Map<Policy, string>();
  for (const p of policies) {
    const clash = (count.get(p.name) ?? 0) > 1;
    out.set(p, clash ? `${p.name}@${relative(root, p.source.file)}${p.docIndex ? `#${p.docIndex}` : ''}` : p.name);
  }
  return out;
}
