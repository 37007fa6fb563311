/**
 * Suite names as the command line knows them (`--suite static,probe,policies`).
 * One table ties each name to how its suite is made and says what it asks; the
 * inputs the suites were made from (triggers, agent bundles) are hashed for run.json.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { BpfgateError } from '../core/errors.js';
import type { RunInputs } from '../core/run-manifest.js';
import { policiesSuite } from './policies/index.js';
import { probeSuite } from './probe/index.js';
import { reproSuite } from './repro/index.js';
import { clusterSuite } from './cluster/index.js';
import { staticSuite } from './static.js';
import { tetragonNotConfigured, tetragonSuite } from './tetragon/index.js';
import { predictionCheck } from './tetragon/prediction.js';
import { loadBundle } from './tetragon/bundle.js';
import type { CrossCheck, Suite } from '../core/suite.js';
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
  /** The agent's Helm chart for the cluster suite (a reference, a directory or a .tgz). */
  chart?: string;
  /** The helm binary (default: helm from PATH). */
  helm?: string;
  /** The user's values files for the chart, on top of bpfgate's. */
  helmValues?: string[];
  /** The cluster suite turns on the agent's CRI lookup and cgidmap. */
  cri?: boolean;
  /** The cluster suite restarts each node's container runtime and runs the triggers again (opt-in). */
  restartRuntime?: 'containerd' | 'k3s';
  /** How the agent mounts the CRI socket: the chart's file mount, or its directory. */
  criMount?: 'file' | 'directory';
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
  cluster: {
    about: 'Tetragon on a Kubernetes cluster (qemu-cluster or --kubeconfig): every node\'s load state, triggers as pods, events and their pod metadata',
    make: async (opts) =>
      clusterSuite(await triggersOf(opts), {
        bundles: await Promise.all((opts.tetragon ?? []).map(loadBundle)),
        helm: opts.helm ?? 'helm',
        valuesFiles: opts.helmValues ?? [],
        ...(opts.chart ? { chart: opts.chart } : {}),
        ...(opts.cri ? { cri: true } : {}),
        ...(opts.restartRuntime ? { restartRuntime: opts.restartRuntime } : {}),
        ...(opts.criMount ? { criMount: opts.criMount } : {}),
      }),
  },
};

/** Checks over two suites' results of a cell; the orchestrator runs those whose suites are all in the run. */
export const CROSS_CHECKS: readonly CrossCheck[] = [predictionCheck];

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What the suites are made from, as run.json records it. */
async function suiteInputs(names: readonly string[], opts: SuiteOptions): Promise<Pick<RunInputs, 'triggers' | 'agent'>> {
  const triggers = names.some((n) => n === 'policies' || n === 'tetragon' || n === 'cluster') ? await triggersOf(opts) : undefined;
  const bundles = (names.includes('tetragon') || names.includes('cluster')) && opts.tetragon?.length ? await Promise.all(opts.tetragon.map(loadBundle)) : [];
  return {
    triggers: triggers ? { source: opts.triggers?.length ? 'files' : 'catalogue', sha256: createHash('sha256').update(JSON.stringify(triggers)).digest('hex') } : null,
    agent: bundles.length
      ? {
          bundles: await Promise.all(bundles.map(async (b) => ({ arch: b.arch, version: b.version, sha256: await sha256File(b.tetragon) }))),
          args: opts.tetragonArgs ?? [],
          boots: opts.tetragonBoots ?? 'auto',
          ...(names.includes('cluster')
            ? { cluster: { chart: opts.chart ?? null, cri: opts.cri === true, criMount: opts.criMount ?? 'file', restartRuntime: opts.restartRuntime ?? null, values: opts.helmValues ?? [] } }
            : {}),
        }
      : null,
  };
}

/** The suites of these names, and what they were made from. */
export async function resolveSuites(names: string[], opts: SuiteOptions = {}): Promise<{ suites: Suite[]; inputs: Pick<RunInputs, 'triggers' | 'agent'> }> {
  const unknown = names.filter((n) => !SUITES[n]);
  if (unknown.length) {
    throw new BpfgateError('usage', `unknown suite "${unknown.join(', ')}"; expected one of ${Object.keys(SUITES).join(', ')}`);
  }
  const unique = [...new Set(names)];
  const suites = await Promise.all(unique.map((name) => SUITES[name]!.make(opts)));
  return { suites, inputs: await suiteInputs(unique, opts) };
}
