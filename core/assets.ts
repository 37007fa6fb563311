/**
 * Paths to files that ship with bpfgate (guest scripts, BPF sources, trigger
 * catalogue, schemas). They live beside the sources, not in dist/, so the package
 * root is found by walking up to package.json: it works from dist/ and from the
 * TypeScript sources that vitest runs.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'guest'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('bpfgate: cannot find the package root (package.json beside guest/)');
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot();

export function assetPath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
