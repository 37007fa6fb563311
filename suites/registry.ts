/**
 * Suite names as the command line knows them (`--suite static,probe,policies`).
 * One table ties each name to how its suite is made and says what it asks.
 */
import { BpfgateError } from '../core/errors.js';
import { policiesSuite } from './policies/index.js';
import { probeSuite } from './probe/index.js';
import { reproSuite } from './repro/index.js';
import { staticSuite } from './static.js';
import { tetragonNotConfigured, tetragonSuite } from './tetragon/index.js';
import { loadBundle } from '../runners/tetragon/bundle.js';
import type { Suite } from './suite.js';
import { loadTriggerCatalogue, loadTriggerFiles } from './triggers/load.js';

export interface SuiteOptions {
  /** Trigger files or directories replacing the shipped catalogue. */
  triggers?: string[];
  /** Tetragon release bundles (tarballs, directories or URLs), one per arch. */
  tetragon?: string[];
  /** Extra agent flags, e.g. --disable-kprobe-multi. */
  tetragonArgs?: string[];
  /** Boots per cell for the tetragon suite (default auto). */
  tetragonBoots?: number | 'auto';
}

async function triggersOf(opts: SuiteOptions) {
  return opts.triggers?.length ? loadTriggerFiles(opts.triggers) : loadTriggerCatalogue();
}

export const SUITES: Record<string, { about: string; make(opts: SuiteOptions): Promise<Suite> }> = {
  static: {
    about: 'schema, portability and feature needs of every policy, predicted per cell (no boot)',
    make: async () => staticSuite,
  },
  probe: {
    about: 'kernel facts and BPF features by attaching and counting hits, in the guest',
    make: async () => probeSuite,
  },
  policies: {
    about: 'every hook of every policy registered in the guest, the ATT&CK triggers run one by one, hits counted',
    make: async (opts) => policiesSuite(await triggersOf(opts)),
  },
  tetragon: {
    about: 'tetragon-vm lane: a Tetragon release started in the guest with every policy; load state, triggers, exported events',
    make: async (opts) =>
      opts.tetragon?.length
        ? tetragonSuite(await triggersOf(opts), await Promise.all(opts.tetragon.map(loadBundle)), { agentArgs: opts.tetragonArgs ?? [], boots: opts.tetragonBoots ?? 'auto' })
        : tetragonNotConfigured,
  },
  repro: {
    about: 'the named bug reproductions (see bpfgate repro)',
    make: async () => reproSuite(),
  },
};

export async function resolveSuites(names: string[], opts: SuiteOptions = {}): Promise<Suite[]> {
  const unknown = names.filter((n) => !SUITES[n]);
  if (unknown.length) {
    throw new BpfgateError('usage', `unknown suite "${unknown.join(', ')}"; expected one of ${Object.keys(SUITES).join(', ')}`);
  }
  return Promise.all([...new Set(names)].map((name) => SUITES[name]!.make(opts)));
}
