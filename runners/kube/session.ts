/**
 * What a suite gives a cell of a Kubernetes platform (the assembled QEMU cluster, an
 * existing cluster through a kubeconfig; kind and k3s next): a session that runs on one
 * node of a started cluster through the API and emits checks as they finish. Steps that
 * concern the whole cluster (installing an agent, applying policies) go through
 * `cluster.shared`: they run once for every cell's session, and their teardown runs
 * before the platform stops, also after an interrupt.
 */
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import type { Arch } from '../../matrix/cell.js';
import type { KubeApi } from './api.js';

/** A cell of a cluster: one node. */
export interface KubeNode {
  cell: string;
  /** The Node object's name. */
  name: string;
  arch: Arch;
}

export interface KubeCluster {
  api: KubeApi;
  /** A kubeconfig file for tools that need one (helm). */
  kubeconfigFile: string;
  /** bpfgate assembled the cluster; otherwise it changes nothing but what it creates. */
  owned: boolean;
  /** Short id of this run: names and labels of what it creates. */
  runId: string;
  /** Labels every object bpfgate creates carries: the cleanup deletes by them. */
  labels: Record<string, string>;
  /**
   * Environment for pods that talk to the API server from a node: on an assembled cluster
   * the service IP does not route (no kube-proxy), so KUBERNETES_SERVICE_HOST/PORT point
   * at the API server directly.
   */
  apiserverEnv: Record<string, string>;
  /** The container runtime's socket on the nodes (for an agent's CRI lookup). */
  criSocket: string;
  /** Milliseconds from the nodes' boot to each node's Ready, by cell (an assembled cluster). */
  readyAfterMs?: Record<string, number>;
  /** The output directory of a cell (`cells/<id>` of the run): where a session keeps raw evidence. */
  cellDir(cell: string): string;
  /** Progress of a cell (a node): shown live, logged in CI. */
  phase(cell: string, phase: string, detail?: string): void;
  /** Runs `setup` once for the whole cluster; `teardown` runs before the platform stops. */
  shared<T>(key: string, setup: () => Promise<T>, teardown?: (value: T) => Promise<void>): Promise<T>;
  signal: AbortSignal;
}

export interface KubeSession {
  planned(): PlannedCheck[];
  /** docker-archives every node of this arch must hold (a platform that builds its nodes imports them). */
  nodeImages?(arch: Arch): Promise<string[]>;
  /** Runs the suite on one node; each finished check is emitted at once. */
  run(node: KubeNode, cluster: KubeCluster, emit: (draft: CheckDraft) => void): Promise<void>;
}

declare module '../../core/platform.js' {
  interface PlatformSessions {
    'qemu-cluster': KubeSession;
    kubeconfig: KubeSession;
  }
}
