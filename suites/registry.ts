/**
 * Suite names as the command line knows them (`--suite static,probe`).
 * One table ties each name to its suite and says what it asks.
 */
import { BpfgateError } from '../core/errors.js';
import { probeSuite } from './probe/index.js';
import { staticSuite } from './static.js';
import type { Suite } from './suite.js';

export const SUITES: Record<string, { suite: Suite; about: string }> = {
  static: { suite: staticSuite, about: 'schema, portability and feature needs of every policy, predicted per cell (no boot)' },
  probe: { suite: probeSuite, about: 'kernel facts and BPF features by attaching and counting hits, in the guest' },
};

export function resolveSuites(names: string[]): Suite[] {
  return names.map((name) => {
    const entry = SUITES[name];
    if (!entry) {
      throw new BpfgateError('usage', `unknown suite "${name}"; expected one of ${Object.keys(SUITES).join(', ')}`);
    }
    return entry.suite;
  });
}
