/**
 * The cluster suite: Tetragon on a Kubernetes cluster, asked per node. Did every node's
 * agent load every policy (the load state lives only on the node: the CRD has no status),
 * did each trigger's events arrive, and do they carry the right pod? It runs on any
 * Kubernetes platform (the assembled QEMU cluster, an existing cluster through its
 * kubeconfig) through one adapter (kube.ts); its checks are filed under the platform's lane.
 */
import type { LiveSuite } from '../../core/suite.js';
import { bundleFor } from '../tetragon/bundle.js';
import type { Trigger } from '../triggers/model.js';
import { ClusterKubeSession, type ClusterOptions } from './kube.js';

export function clusterSuite(triggers: Trigger[], options: ClusterOptions): LiveSuite {
  const make = (ctx: ConstructorParameters<typeof ClusterKubeSession>[0]) => new ClusterKubeSession(ctx, triggers, options);
  return {
    kind: 'live',
    name: 'cluster',
    lane: 'kubeconfig',
    lanes: { 'qemu-cluster': 'qemu-cluster', kubeconfig: 'kubeconfig', kind: 'kind', k3s: 'k3s' },
    // Agent start and policy loads on an emulated node, then every trigger as a pod.
    budgetMs: 600_000 + triggers.length * 10_000,
    sessions: { 'qemu-cluster': make, kubeconfig: make },
    agentOn: (cell) => {
      const bundle = bundleFor(options.bundles, cell.arch);
      return bundle ? { name: 'tetragon', version: bundle.version } : undefined;
    },
  };
}
