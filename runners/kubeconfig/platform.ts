/**
 * An existing cluster, reached through a kubeconfig: its nodes are the cells. bpfgate
 * assembles nothing and changes nothing but what it creates (and deletes that after).
 *
 *   nodeCells(kubeconfig)  the cells: one per Ready node, arch from its labels
 *   describe(cell)         what the Node says (kernel release, arch, container runtime);
 *                          page size and active LSMs read inside the node's agent pod when
 *                          one runs there (a 16K kernel also shows in its hugepage sizes)
 *   start/run              the sessions through the API; dispose runs their teardowns
 */
import type { CellFacts } from '../../core/facts.js';
import { InfraError } from '../../core/errors.js';
import type { Platform, PlatformEnv, StartedPlatform, StartingCell } from '../../core/platform.js';
import type { Arch, Cell, PageSize } from '../../matrix/cell.js';
import { KubeApi } from '../kube/api.js';
import type { KubeNode } from '../kube/session.js';
import { StartedCluster } from '../kube/started.js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

declare module '../../core/platform.js' {
  interface PlatformSettings {
    /** The kubeconfig of an existing cluster (the kubeconfig platform). */
    kubeconfig?: string;
  }
}

export interface NodeObject {
  metadata: { name: string; labels?: Record<string, string> };
  status?: {
    nodeInfo?: { kernelVersion?: string; architecture?: string; containerRuntimeVersion?: string; kubeletVersion?: string };
    capacity?: Record<string, string>;
    conditions?: { type: string; status: string }[];
  };
}

const ARCH: Record<string, Arch> = { amd64: 'x86_64', arm64: 'arm64' };

/** A cell id for a node: `node-<name>`, with what ids cannot hold made safe. */
export function nodeCellId(name: string): string {
  return `node-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/**
 * The page size a node's huge page sizes imply (the kubelet reports one capacity per size
 * the kernel offers): arm64 with 64K pages offers 512Mi, with 4K pages 64Ki (contiguous
 * PTEs) beside 2Mi and 32Mi, with 16K pages 2Mi and 32Mi without 64Ki; x86_64 has 4K.
 */
function pagesFromCapacity(arch: Arch, capacity: Record<string, string> | undefined): PageSize {
  if (arch !== 'arm64' || !capacity) return 4;
  if (capacity['hugepages-512Mi'] !== undefined) return 64;
  if (capacity['hugepages-32Mi'] !== undefined && capacity['hugepages-64Ki'] === undefined) return 16;
  return 4;
}

/** The cells of a cluster: one per node whose arch bpfgate knows. */
export async function nodeCells(kubeconfig: string): Promise<Cell[]> {
  const api = KubeApi.fromFile(kubeconfig);
  const nodes = await api.list<NodeObject>('v1', 'Node');
  if (nodes.length === 0) throw new InfraError('infra-cluster-unreachable', `the cluster of ${kubeconfig} (${api.server}) has no nodes`);
  return nodes.flatMap((n) => {
    const cell = cellOfNode(n);
    return cell ? [cell] : [];
  });
}

/** The cell of a Node object, or undefined for an arch bpfgate does not know. */
export function cellOfNode(n: NodeObject): Cell | undefined {
  const arch = ARCH[n.status?.nodeInfo?.architecture ?? n.metadata.labels?.['kubernetes.io/arch'] ?? ''];
  if (!arch) return undefined;
  return {
    id: nodeCellId(n.metadata.name),
    arch,
    pageSize: pagesFromCapacity(arch, n.status?.capacity),
    kernelLabel: n.status?.nodeInfo?.kernelVersion ?? 'unknown',
    kernel: { kind: 'running', node: n.metadata.name },
    bootArgs: [],
    platform: 'kubeconfig',
    variants: [],
  };
}

export class KubeconfigPlatform implements Platform<'kubeconfig'> {
  readonly name = 'kubeconfig' as const;
  private api: KubeApi | undefined;

  private client(env: PlatformEnv): KubeApi {
    if (!env.settings.kubeconfig) throw new InfraError('infra-cluster-unreachable', 'the kubeconfig platform needs --kubeconfig FILE');
    this.api ??= KubeApi.fromFile(env.settings.kubeconfig);
    return this.api;
  }

  async tools(): Promise<Record<string, string>> {
    return {};
  }

  async describe(cell: Cell, _opts: { booting: boolean }, env: PlatformEnv): Promise<{ facts: CellFacts; config: ReadonlyMap<string, string> }> {
    const api = this.client(env);
    const name = cell.kernel.kind === 'running' ? cell.kernel.node : cell.id;
    const node = await api.get<NodeObject>(`/api/v1/nodes/${encodeURIComponent(name)}`);
    if (!node) throw new InfraError('infra-node-not-ready', `node ${name} is not in the cluster any more`);
    const info = node.status?.nodeInfo ?? {};
    const facts: CellFacts = {
      cell: cell.id,
      platform: 'kubeconfig',
      arch: cell.arch,
      pageKiB: pagesFromCapacity(cell.arch, node.status?.capacity),
      kernel: { name: `node:${name}`, release: info.kernelVersion ?? 'unknown' },
      bootArgs: [],
      lsm: [],
      config: {},
      node: { name, runtime: info.containerRuntimeVersion ?? 'unknown', criSocket: 'unknown' },
    };
    // Measured inside the node's agent pod, when one runs there.
    const agents = await api.list<{ metadata: { name: string; namespace: string } }>('v1', 'Pod', { labelSelector: 'app.kubernetes.io/name=tetragon', fieldSelector: `spec.nodeName=${name}` }).catch(() => []);
    const agent = agents[0];
    if (agent) {
      const script = 'grep -m1 KernelPageSize /proc/self/smaps; cat /sys/kernel/security/lsm 2>/dev/null';
      const exec = (shell: string[]) => api.tryExec(agent.metadata.namespace, agent.metadata.name, 'tetragon', [...shell, '-c', script], { timeoutMs: 30_000 });
      // An agent image may hold a shell, or only busybox (bpfgate's own).
      let r = await exec(['sh']);
      if (r.exitCode !== 0) r = await exec(['busybox', 'sh']);
      const kib = Number(/KernelPageSize:\s+(\d+)/.exec(r.stdout)?.[1]);
      if (kib === 4 || kib === 16 || kib === 64) facts.pageKiB = kib;
      const lsm = r.stdout.split('\n').find((l) => /^[a-z,]+$/.test(l.trim()) && l.includes(','));
      if (lsm) facts.lsm = lsm.trim().split(',');
    }
    return { facts, config: new Map() };
  }

  async start(cells: readonly StartingCell<'kubeconfig'>[], env: PlatformEnv): Promise<StartedPlatform<'kubeconfig'>> {
    const api = this.client(env);
    const nodes = new Map<string, KubeNode>();
    for (const c of cells) {
      const name = c.cell.kernel.kind === 'running' ? c.cell.kernel.node : c.cell.id;
      nodes.set(c.cell.id, { cell: c.cell.id, name, arch: c.cell.arch });
    }
    const runId = randomBytes(3).toString('hex');
    return new StartedCluster<'kubeconfig'>({
      cluster: {
        api,
        kubeconfigFile: env.settings.kubeconfig!,
        owned: false,
        runId,
        labels: { 'bpfgate.dev/run': runId },
        // A cluster of its own routes its service IP: pods need no override.
        apiserverEnv: {},
        criSocket: env.settings.criSocket ?? '/run/containerd/containerd.sock',
        signal: env.signal,
        phase: env.phase,
        cellDir: (cell) => join(env.outDir, 'cells', cell),
      },
      nodes,
      unready: new Map(),
      stop: async () => {},
    });
  }
}
