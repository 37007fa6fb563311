/**
 * The shared corpus lives beside the project (../shared) and is read in place.
 * BPFGATE_SHARED overrides the path. A missing corpus fails the suite: it never skips.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const SHARED = resolve(process.env.BPFGATE_SHARED ?? join(PROJECT_ROOT, '..', 'shared'));

if (!existsSync(join(SHARED, 'corpus'))) {
  throw new Error(
    `shared corpus not found at ${SHARED}/corpus: clone it beside the project or set BPFGATE_SHARED`,
  );
}

export const CORPUS = join(SHARED, 'corpus');
export const CRD_DIR = join(CORPUS, 'crd');
export const EXAMPLES = join(CORPUS, 'tetragon-examples');
export const EXTRA = join(CORPUS, 'tetragon-extra');
export const EVENTS = join(CORPUS, 'events');

/** The built CLI, for end-to-end tests that run bpfgate itself. */
export const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
