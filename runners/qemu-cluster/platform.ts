/**
 * The assembled cluster: a Kubernetes control plane on the host (loopback only) and one
 * QEMU node per cell, each booting the cell's own kernel with its boot parameters: the
 * way a cluster gets an arm64 16K node, or a node without BPF LSM, next to an x86_64 one.
 *
 *   describe(cell)  the kernel's facts (as a QEMU cell), the node's name (a loopback
 *                   address the API server reaches its kubelet at) and its runtime
 *   start(cells)    certificates for the run, etcd + kube-apiserver + controller-manager +
 *                   scheduler, a node image per arch (kubelet, containerd, runc, CNI, and
 *                   the images the sessions asked for), every node booted at once and
 *                   waited for until Ready
 *   run(cell)       the sessions on that node, through the API
 *   dispose         the suites' teardowns, the nodes (QEMU killed), the control plane,
 *                   the scratch directory
 *
 * Networking is QEMU user networking (findings-k8s-node-in-guest.md, option A): no host
 * interface, no privileges; pods reach the API server at 10.0.2.2, not through the
 * service IP (no kube-proxy), so pods that need it get KUBERNETES_SERVICE_HOST/PORT.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { execa } from 'execa';
import type { CellFacts } from '../../core/facts.js';
import { InfraError } from '../../core/errors.js';
import type { Platform, PlatformEnv, StartedPlatform, StartingCell } from '../../core/platform.js';
import type { Reason } from '../../core/reasons.js';
import { DEBIAN_ARCH, type Arch, type Cell } from '../../matrix/cell.js';
import { kernelName } from '../../matrix/kernel-catalogue.js';
import { criImages } from '../containerd/images.js';
import { isReady } from '../kube/api.js';
import { StartedCluster } from '../kube/started.js';
import type { KubeNode, KubeSession } from '../kube/session.js';
import { privateApt } from '../qemu/apt.js';
import { chooseAccel } from '../qemu/accel.js';
import { buildOverlay, combineInitrd, type OverlayFile } from '../qemu/guest-image.js';
import type { KernelArtifact } from '../qemu/kernel-cache.js';
import { kernelFacts } from '../qemu/platform.js';
import { unpackedPackage } from '../qemu/unpacked.js';
import { RunningGuest, HOST_FROM_GUEST } from '../qemu/vm.js';
import { binaryFor, CONTROL_PLANE, findKubernetesBinaries, hostArchName } from './binaries.js';
import { ControlPlane, KUBERNETES_SERVICE_IP } from './control-plane.js';
import { containerdConfig, cniConfig, kubeletConfig } from './node-config.js';
import { buildNodeImage, kernelModules } from './node-image.js';
import { kubeconfig, makePki } from './pki.js';

declare module '../../core/platform.js' {
  interface PlatformSettings {
    /** Kubernetes binaries: directories, release tarballs or URLs (the control plane for the host, a kubelet per node arch). */
    kubernetes?: string[];
    /** The container runtime's socket on the nodes; K3s's path reproduces its socket bug. */
    criSocket?: string;
    /** Memory of each node guest (MiB). */
    nodeMemoryMiB?: number;
  }
}

export const DEFAULT_CRI_SOCKET = '/run/containerd/containerd.sock';
/** How long the nodes may take to become Ready after they all booted at once, under TCG. */
const NODES_READY_TIMEOUT_MS = 300_000;
const DEFAULT_NODE_MEMORY_MIB = 2048;
/** A node runs until the platform stops it; this only bounds a forgotten one. */
const NODE_LIFETIME_MS = 6 * 3600_000;

interface NodePlan {
  name: string;
  index: number;
  kernel: KernelArtifact;
}

export class QemuClusterPlatform implements Platform<'qemu-cluster'> {
  readonly name = 'qemu-cluster' as const;
  private readonly nodes = new Map<string, NodePlan>();
  private readonly taken = new Set<string>();

  async tools(): Promise<Record<string, string>> {
    const line = async (tool: string, args: string[]) => {
      const r = await execa(tool, args, { reject: false });
      return r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'not installed';
    };
    return {
      'qemu-system-x86_64': await line('qemu-system-x86_64', ['--version']),
      'qemu-system-aarch64': await line('qemu-system-aarch64', ['--version']),
      openssl: await line('openssl', ['version']),
    };
  }

  async describe(cell: Cell, opts: { booting: boolean }, env: PlatformEnv): Promise<{ facts: CellFacts; config: ReadonlyMap<string, string> }> {
    env.phase(cell.id, 'prepare', kernelName(cell.kernel));
    const { kernel, config, facts } = await kernelFacts(cell, { onProgress: (l) => env.log('info', `${cell.id}: ${l}`) });
    facts.platform = 'qemu-cluster';
    const name = await this.nodeName(cell.id);
    const criSocket = env.settings.criSocket ?? DEFAULT_CRI_SOCKET;
    const containerd = await (await privateApt()).resolve('containerd', 'trixie', DEBIAN_ARCH[cell.arch]);
    facts.node = { name, runtime: `containerd ${containerd.version}`, criSocket };
    if (opts.booting) {
      // Only for the facts: a TCG-emulated arm64 node on an x86_64 host, or KVM where it boots.
      const accel = await chooseAccel(cell.arch, kernel.image, kernel.imageSha256, '');
      facts.accel = { accel: accel.accel, why: accel.why };
    }
    this.nodes.set(cell.id, { name, index: this.nodes.size, kernel });
    return { facts, config };
  }

  /** A loopback address whose kubelet port is free: the node's name and where its kubelet is reached. */
  private async nodeName(cell: string): Promise<string> {
    const known = this.nodes.get(cell);
    if (known) return known.name;
    for (let attempt = 0; attempt < 50; attempt++) {
      const name = `127.0.${1 + Math.floor(Math.random() * 200)}.${2 + Math.floor(Math.random() * 250)}`;
      if (this.taken.has(name)) continue;
      this.taken.add(name);
      if (await portFree(name, 10250)) return name;
    }
    throw new InfraError('infra-cluster-unreachable', 'no free loopback address for a node kubelet (127.0.x.y:10250 all taken)');
  }

  async start(cells: readonly StartingCell<'qemu-cluster'>[], env: PlatformEnv): Promise<StartedPlatform<'qemu-cluster'>> {
    const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-cluster-'));
    const guests: RunningGuest[] = [];
    const logs: WriteStream[] = [];
    let plane: ControlPlane | undefined;
    const stop = async () => {
      for (const g of guests) g.kill();
      await Promise.allSettled(guests.map((g) => g.outcome));
      for (const l of logs) l.end();
      if (plane) await plane[Symbol.asyncDispose]();
      await rm(scratch, { recursive: true, force: true });
    };
    try {
      const binaries = await findKubernetesBinaries(env.settings.kubernetes ?? []);
      const host = hostArchName();
      const etcd = await unpackedPackage('etcd-server', 'trixie', DEBIAN_ARCH[host], (l) => env.log('info', l));
      const describedCells = cells.filter((c) => !c.facts.error && this.nodes.has(c.cell.id));
      const plans = describedCells.map((c) => ({ cell: c, plan: this.nodes.get(c.cell.id)! }));
      const pki = await makePki(join(scratch, 'pki'), plans.map((p) => ({ name: p.plan.name })), ['127.0.0.1', HOST_FROM_GUEST, KUBERNETES_SERVICE_IP]);
      env.phase(cells[0]?.cell.id ?? 'cluster', 'control-plane', 'etcd, kube-apiserver, controller-manager, scheduler');
      plane = await ControlPlane.start({
        dir: join(scratch, 'control-plane'),
        logDir: join(env.outDir, 'cluster'),
        pki,
        binaries: {
          apiserver: binaryFor(binaries, CONTROL_PLANE[0], host),
          controllerManager: binaryFor(binaries, CONTROL_PLANE[1], host),
          scheduler: binaryFor(binaries, CONTROL_PLANE[2], host),
          etcd: join(etcd.root, 'usr', 'bin', 'etcd'),
        },
        signal: env.signal,
      });
      const criSocket = env.settings.criSocket ?? DEFAULT_CRI_SOCKET;

      // One node image per arch, with every image any session asked its nodes to hold.
      const arches = [...new Set(plans.map((p) => p.cell.cell.arch))];
      const images = new Map<Arch, string[]>();
      for (const arch of arches) {
        const wanted = new Set<string>([(await criImages(arch)).pause.file]);
        for (const p of plans.filter((x) => x.cell.cell.arch === arch)) {
          for (const s of p.cell.sessions) for (const file of (await (s.session as KubeSession).nodeImages?.(arch)) ?? []) wanted.add(file);
        }
        images.set(arch, [...wanted]);
      }
      const nodeImages = new Map<Arch, string>();
      for (const arch of arches) {
        env.phase(plans.find((p) => p.cell.cell.arch === arch)!.cell.cell.id, 'node-image', arch);
        const kubelet = binaryFor(binaries, 'kubelet', arch);
        nodeImages.set(arch, (await buildNodeImage(arch, { kubelet, images: images.get(arch)!, onProgress: (l) => env.log('info', l) })).path);
      }

      // Every node at once: a cluster needs them all.
      const bootedAt = new Map<string, number>();
      for (const { cell, plan } of plans) {
        const id = cell.cell.id;
        const modules = await kernelModules(plan.kernel);
        const files: OverlayFile[] = [
          { path: '/etc/bpfgate/node.env', content: [`BPFGATE_NODE=${plan.name}`, `BPFGATE_CRI_SOCKET=${criSocket}`, `BPFGATE_MODULES="${modules.order.join(' ')}"`, `BPFGATE_SERVICE_IP=${KUBERNETES_SERVICE_IP}`, `BPFGATE_APISERVER_HOST=${HOST_FROM_GUEST}`, `BPFGATE_APISERVER_PORT=${plane.port}`].join('\n') + '\n' },
          { path: '/etc/containerd/config.toml', content: containerdConfig({ criSocket, sandboxImage: (await criImages(cell.cell.arch)).pause.tags[0]! }) },
          { path: '/etc/cni/net.d/10-bridge.conflist', content: cniConfig(`10.244.${plan.index + 1}.0/24`) },
          { path: '/etc/kubernetes/kubelet-config.yaml', content: kubeletConfig(criSocket) },
          { path: '/etc/kubernetes/kubelet.kubeconfig', content: await kubeconfig(plane.serverFromNodes, pki.ca.cert, pki.nodes.get(plan.name)!.client, `system:node:${plan.name}`), mode: 0o600 },
          { path: '/etc/kubernetes/pki/ca.crt', from: pki.ca.cert },
          { path: '/etc/kubernetes/pki/kubelet-serving.crt', from: pki.nodes.get(plan.name)!.serving.cert },
          { path: '/etc/kubernetes/pki/kubelet-serving.key', from: pki.nodes.get(plan.name)!.serving.key, mode: 0o600 },
          ...modules.order.map((m) => ({ path: `/lib/modules/bpfgate/${m}.ko`, from: join(modules.dir, `${m}.ko`) })),
        ];
        const work = join(scratch, 'nodes', id.replace(/[^A-Za-z0-9._+-]/g, '_'));
        await mkdir(work, { recursive: true });
        const overlay = join(work, 'overlay.cpio');
        await buildOverlay(files, overlay, { compress: false });
        const initrd = join(work, 'initrd.img');
        await combineInitrd(nodeImages.get(cell.cell.arch)!, overlay, initrd);
        const logDir = join(env.outDir, 'cells', id);
        await mkdir(logDir, { recursive: true });
        const log = createWriteStream(join(logDir, 'serial.log'));
        logs.push(log);
        env.phase(id, 'boot', `node ${plan.name}`);
        bootedAt.set(id, Date.now());
        guests.push(
          new RunningGuest(
            {
              arch: cell.cell.arch,
              kernel: plan.kernel.image,
              initrd,
              append: [...cell.cell.bootArgs],
              accel: cell.facts.accel?.accel ?? 'tcg',
              timeoutMs: NODE_LIFETIME_MS,
              serialLog: join(logDir, 'serial.log'),
              memoryMiB: env.settings.nodeMemoryMiB ?? DEFAULT_NODE_MEMORY_MIB,
              signal: env.signal,
              network: { forwards: [{ hostAddress: plan.name, hostPort: 10250, guestPort: 10250 }] },
            },
            () => {},
            log,
          ),
        );
      }

      // Ready, or why not.
      const nodes = new Map<string, KubeNode>();
      const unready = new Map<string, { reason: Reason; evidence: Record<string, unknown> }>();
      const readyAt = new Map<string, number>();
      await plane.api.waitFor(async () => {
        for (const { cell, plan } of plans) {
          if (readyAt.has(cell.cell.id)) continue;
          const node = await plane!.api.get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${plan.name}`);
          if (isReady(node)) {
            // From the node's own QEMU start.
            const ms = Date.now() - bootedAt.get(cell.cell.id)!;
            readyAt.set(cell.cell.id, ms);
            env.phase(cell.cell.id, 'ready', `node ${plan.name} Ready ${(ms / 1000).toFixed(1)} s after its QEMU started`);
          }
        }
        return readyAt.size === plans.length ? true : undefined;
      }, NODES_READY_TIMEOUT_MS, 500, env.signal);
      for (const [i, { cell, plan }] of plans.entries()) {
        if (readyAt.has(cell.cell.id)) nodes.set(cell.cell.id, { cell: cell.cell.id, name: plan.name, arch: cell.cell.arch });
        else unready.set(cell.cell.id, { reason: 'infra-node-not-ready', evidence: { node: plan.name, waitedS: NODES_READY_TIMEOUT_MS / 1000, consoleTail: guests[i]!.consoleTail() } });
      }
      const runId = randomBytes(3).toString('hex');
      return new StartedCluster<'qemu-cluster'>({
        cluster: {
          api: plane.api,
          kubeconfigFile: plane.adminKubeconfig,
          owned: true,
          runId,
          labels: { 'bpfgate.dev/run': runId },
          apiserverEnv: { KUBERNETES_SERVICE_HOST: HOST_FROM_GUEST, KUBERNETES_SERVICE_PORT: String(plane.port) },
          criSocket,
          signal: env.signal,
          phase: env.phase,
          cellDir: (cell) => join(env.outDir, 'cells', cell),
          readyAfterMs: Object.fromEntries(readyAt),
        },
        nodes,
        unready,
        stop,
      });
    } catch (err) {
      await stop();
      throw err;
    }
  }
}

/** Whether a TCP port can be bound at an address now. */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
