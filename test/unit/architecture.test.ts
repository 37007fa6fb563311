/**
 * The dependency rules ARCHITECTURE.md draws, read from the import lines themselves:
 * a platform never reaches into suites, the orchestrator never into a platform, and
 * core (the shared contracts) into neither.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../support/shared.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.ts$/.test(name) && !/\.test\.ts$/.test(name) ? [path] : [];
  });
}

/** Every relative import of a file, as a path from the project root (`suites/probe/index.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)].map((m) => relative(PROJECT_ROOT, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
}

const offending = (files: string[], forbidden: RegExp) =>
  files.flatMap((f) => importsOf(f).filter((i) => forbidden.test(i)).map((i) => `${relative(PROJECT_ROOT, f)} -> ${i}`));

describe('the seam between platforms and suites', () => {
  it('sees an import when there is one (the CLI does import the suite registry)', () => {
    expect(offending([join(PROJECT_ROOT, 'cli', 'commands', 'run.ts')], /^suites\//)).toContain('cli/commands/run.ts -> suites/registry.ts');
  });

  it('runners/ imports nothing from suites/', () => {
    expect(offending(sources(join(PROJECT_ROOT, 'runners')), /^suites\//)).toEqual([]);
  });

  it('the orchestrator imports no platform: it looks them up by name', () => {
    const orchestrator = join(PROJECT_ROOT, 'runners', 'orchestrator.ts');
    expect(importsOf(orchestrator).length).toBeGreaterThan(3);
    expect(offending([orchestrator], /^runners\/(?!platforms\.ts)/)).toEqual([]);
  });

  it('core/ imports neither runners/, suites/, reports/ nor cli/', () => {
    expect(offending(sources(join(PROJECT_ROOT, 'core')), /^(runners|suites|reports|cli)\//)).toEqual([]);
  });

  it('planning (matrix/, policy/) touches no runner, suite or report', () => {
    expect(offending([...sources(join(PROJECT_ROOT, 'matrix')), ...sources(join(PROJECT_ROOT, 'policy'))], /^(runners|suites|reports|cli)\//)).toEqual([]);
  });
});
