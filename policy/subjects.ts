/**
 * Subject names in results, tables and baselines. A policy's subject is its metadata
 * name; when two policies share a name it is `name@relPath`, the file's path relative to
 * the `--policies` path it was found under (model.ts PolicyOrigin), with
 * `#docIndex` when one file holds both. A file that is not valid YAML is named by its
 * relPath alone.
 * Invariant: a subject never depends on the working directory and never holds `..`,
 * so a baseline written in one directory gates a run started from any other.
 */
import { basename, resolve } from 'node:path';
import type { Policy, PolicyProblem } from './model.js';

/** A unique subject for each policy. */
export function policySubjects(policies: readonly Policy[]): Map<Policy, string> {
  const byName = new Map<string, Policy[]>();
  for (const p of policies) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
  const out = new Map<Policy, string>();
  for (const [name, group] of byName) {
    if (group.length === 1) {
      out.set(group[0]!, name);
      continue;
    }
    for (const [p, subject] of qualify(name, group)) out.set(p, subject);
  }
  return out;
}

/** The subject of a file that is not valid YAML (it has no policy name). */
export function fileSubject(problem: PolicyProblem): string {
  return problem.relPath ?? basename(problem.file);
}

/** Subjects for policies that share `name`, each as short as keeps it apart from the others. */
function qualify(name: string, group: readonly Policy[]): Map<Policy, string> {
  const path = (p: Policy) => p.origin.relPath;
  // Two roots can hold the same relative path: then the root's own directory name tells them apart.
  const rooted = (p: Policy) => `${basename(resolve(p.origin.root))}/${p.origin.relPath}`;
  const spellings = [
    (p: Policy) => `${name}@${path(p)}${sameFile(group, p, path) && p.docIndex > 0 ? `#${p.docIndex}` : ''}`,
    (p: Policy) => `${name}@${rooted(p)}${sameFile(group, p, rooted) && p.docIndex > 0 ? `#${p.docIndex}` : ''}`,
  ];
  for (const spell of spellings) {
    const subjects = new Map(group.map((p) => [p, spell(p)] as const));
    if (new Set(subjects.values()).size === group.length) return subjects;
  }
  // Only the same file read twice under two roots of the same name gets here: number them in order.
  return new Map(group.map((p, i) => [p, `${name}@${rooted(p)}#${p.docIndex}${i > 0 ? `~${i + 1}` : ''}`] as const));
}

/** Whether another policy of the group comes from the same file, as `key` names files. */
function sameFile(group: readonly Policy[], p: Policy, key: (p: Policy) => string): boolean {
  return group.some((q) => q !== p && key(q) === key(p));
}
