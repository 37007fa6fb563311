/**
 * `bpfgate cluster up`: an assembled cluster on its own, kept running until Ctrl-C or
 * SIGTERM: the control plane on the host and one QEMU node per cell of a qemu-cluster
 * matrix, with the trigger image and the Tetragon images of the bundles given on every
 * node. It writes an admin kubeconfig, so `bpfgate run --kubeconfig FILE --suite cluster`
 * (or kubectl, or helm) can use the cluster as any other. Stopping removes everything.
 */
import { copyFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BpfgateError, EXIT } from '../../core/errors.js';
import type { PlatformEnv } from '../../core/platform.js';
import type { StartedCluster } from '../../runners/kube/started.js';
import { QemuClusterPlatform } from '../../runners/qemu-cluster/platform.js';
import { imagesOnly } from '../../suites/cluster/images.js';
import { loadBundle } from '../../suites/tetragon/bundle.js';
import { interruptOnSignals } from '../interrupt.js';
import { planCells } from './run.js';

export interface ClusterUpOptions {
  matrix: string;
  cells?: string;
  kubernetes: string[];
  tetragon: string[];
  kubeconfigOut: string;
  criSocket?: string;
  out?: NodeJS.WritableStream;
}

export async function clusterUpCommand(opts: ClusterUpOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const cells = await planCells(opts.matrix, opts.cells);
  const wrong = cells.filter((c) => c.platform !== 'qemu-cluster');
  if (wrong.length) throw new BpfgateError('usage', `${opts.matrix}: cluster up needs a matrix with platform: qemu-cluster (cells ${wrong.map((c) => c.id).join(', ')} are ${wrong[0]!.platform})`);
  const bundles = await Promise.all(opts.tetragon.map(loadBundle));
  using interrupt = interruptOnSignals();
  const say = (line: string) => out.write(`${line}\n`);
  const env: PlatformEnv = {
    outDir: resolve('bpfgate-cluster'),
    signal: interrupt.signal,
    slot: (work) => work(),
    phase: (cell, phase, detail) => say(`${cell}: ${phase}${detail ? ` ${detail}` : ''}`),
    log: (_level, message) => say(message),
    settings: { kubernetes: opts.kubernetes, ...(opts.criSocket ? { criSocket: opts.criSocket } : {}) },
  };
  // What the nodes hold: the trigger image, and an agent image per arch a bundle is given for.
  const images = imagesOnly(bundles);
  const platform = new QemuClusterPlatform();
  const described = [];
  for (const cell of cells) described.push({ cell, ...(await platform.describe(cell, { booting: true }, env)) });
  const started = (await platform.start(described.map((d) => ({ ...d, sessions: [{ suite: 'cluster', lane: 'qemu-cluster' as const, budgetMs: 0, session: images }] })), env)) as StartedCluster<'qemu-cluster'>;
  try {
    await copyFile(started.cluster.kubeconfigFile, opts.kubeconfigOut);
    for (const d of described) say(`${d.cell.id}: node ${d.facts.node?.name} (${d.facts.kernel.release}, ${d.facts.pageKiB}K pages)`);
    say(`kubeconfig: ${resolve(opts.kubeconfigOut)} (API server ${started.cluster.api.server})`);
    say('the cluster runs until Ctrl-C or SIGTERM');
    await new Promise<void>((done) => interrupt.signal.addEventListener('abort', () => done(), { once: true }));
    say('stopping the nodes and the control plane');
  } finally {
    await started[Symbol.asyncDispose]();
  }
  return EXIT.ok;
}
