/**
 * The control plane of an assembled cluster, native on the host and on loopback only:
 * etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager (service
 * accounts, DaemonSets, Jobs) and kube-scheduler, from the Kubernetes binaries the
 * user gave. Ports are free ones picked at start, so two runs never collide. Nodes on
 * QEMU user networking reach the API server at 10.0.2.2:<port>; the API server reaches
 * each kubelet at its node name, a loopback address QEMU forwards to the guest's 10250.
 *
 * Disposing stops everything it started (SIGTERM, then SIGKILL after a grace period)
 * and waits for the processes to be gone; each process is also killed if bpfgate exits.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { InfraError } from '../../core/errors.js';
import { KubeApi } from '../kube/api.js';
import { HOST_FROM_GUEST } from '../qemu/vm.js';
import { kubeconfig, type ClusterPki } from './pki.js';

/** The Services' address range, and the `kubernetes` Service's ClusterIP: its first address. */
export const SERVICE_RANGE = '10.96.0.0/16';
export const KUBERNETES_SERVICE_IP = '10.96.0.1';

export interface ControlPlaneBinaries {
  apiserver: string;
  controllerManager: string;
  scheduler: string;
  etcd: string;
}

/** A free TCP port on the host's loopback. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;

export class ControlPlane implements AsyncDisposable {
  private readonly processes: { name: string; child: ResultPromise }[] = [];
  /** The API server as the host sees it. */
  server = '';
  /** The API server as a node (and a hostNetwork pod) sees it. */
  serverFromNodes = '';
  port = 0;
  adminKubeconfig = '';
  api!: KubeApi;

  private constructor(private readonly dir: string, private readonly pki: ClusterPki, private readonly logDir: string) {}

  /** Starts etcd, then the API server (waits for /readyz), then the controller-manager and the scheduler. */
  static async start(opts: { dir: string; logDir: string; pki: ClusterPki; binaries: ControlPlaneBinaries; signal?: AbortSignal }): Promise<ControlPlane> {
    const plane = new ControlPlane(opts.dir, opts.pki, opts.logDir);
    try {
      await plane.boot(opts.binaries, opts.signal);
      return plane;
    } catch (err) {
      await plane[Symbol.asyncDispose]();
      throw err;
    }
  }

  private spawn(name: string, binary: string, args: string[]): void {
    const log = createWriteStream(join(this.logDir, `${name}.log`));
    const child = execa(binary, args, { reject: false, buffer: false, stdin: 'ignore', cleanup: true });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.finally(() => log.end()).catch(() => undefined);
    this.processes.push({ name, child });
  }

  private async boot(bin: ControlPlaneBinaries, signal?: AbortSignal): Promise<void> {
    const { pki, dir } = this;
    await mkdir(this.logDir, { recursive: true });
    await mkdir(dir, { recursive: true });
    const [etcdClient, etcdPeer, apiserver, cm, scheduler] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    this.port = apiserver;
    this.server = `https://127.0.0.1:${apiserver}`;
    this.serverFromNodes = `https://${HOST_FROM_GUEST}:${apiserver}`;
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    this.spawn('etcd', bin.etcd, [
      '--name', 'bpfgate', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `bpfgate=http://127.0.0.1:${etcdPeer}`, '--listen-metrics-urls', 'http://127.0.0.1:0',
      // A throwaway cluster: its data need not survive a power cut.
      '--unsafe-no-fsync',
    ]);
    this.spawn('kube-apiserver', bin.apiserver, [
      `--etcd-servers=${etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiserver}`,
      `--tls-cert-file=${pki.apiserver.cert}`, `--tls-private-key-file=${pki.apiserver.key}`, `--client-ca-file=${pki.ca.cert}`,
      `--service-account-key-file=${pki.serviceAccount.pub}`, `--service-account-signing-key-file=${pki.serviceAccount.key}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local', `--service-cluster-ip-range=${SERVICE_RANGE}`,
      '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction', '--allow-privileged=true',
      `--kubelet-client-certificate=${pki.apiserverKubeletClient.cert}`, `--kubelet-client-key=${pki.apiserverKubeletClient.key}`,
      '--kubelet-preferred-address-types=Hostname,InternalIP', `--kubelet-certificate-authority=${pki.ca.cert}`,
      // The advertised address is loopback, which the endpoints reconciler refuses; there is no kube-proxy anyway.
      '--endpoint-reconciler-type=none',
    ]);
    this.adminKubeconfig = join(dir, 'admin.kubeconfig');
    await writeFile(this.adminKubeconfig, await kubeconfig(this.server, pki.ca.cert, pki.admin, 'bpfgate-admin'), { mode: 0o600 });
    this.api = KubeApi.fromFile(this.adminKubeconfig);
    const ready = await this.api.waitFor(async () => {
      this.assertAlive();
      const r = await this.api.request('GET', '/readyz', undefined, undefined, 2000).catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    }, READY_TIMEOUT_MS, 250, signal);
    if (!ready) throw new InfraError('infra-cluster-unreachable', `kube-apiserver did not get ready in ${READY_TIMEOUT_MS / 1000} s (log: ${join(this.logDir, 'kube-apiserver.log')})`);

    const cmConfig = join(dir, 'controller-manager.kubeconfig');
    const schedConfig = join(dir, 'scheduler.kubeconfig');
    await writeFile(cmConfig, await kubeconfig(this.server, pki.ca.cert, pki.controllerManager, 'system:kube-controller-manager'), { mode: 0o600 });
    await writeFile(schedConfig, await kubeconfig(this.server, pki.ca.cert, pki.scheduler, 'system:kube-scheduler'), { mode: 0o600 });
    this.spawn('kube-controller-manager', bin.controllerManager, [
      `--kubeconfig=${cmConfig}`, `--authentication-kubeconfig=${cmConfig}`, `--authorization-kubeconfig=${cmConfig}`,
      '--bind-address=127.0.0.1', `--secure-port=${cm}`, '--leader-elect=false', '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki.serviceAccount.key}`, `--root-ca-file=${pki.ca.cert}`,
      `--cluster-signing-cert-file=${pki.ca.cert}`, `--cluster-signing-key-file=${pki.ca.key}`,
      `--service-cluster-ip-range=${SERVICE_RANGE}`, '--controllers=*',
    ]);
    this.spawn('kube-scheduler', bin.scheduler, [
      `--kubeconfig=${schedConfig}`, `--authentication-kubeconfig=${schedConfig}`, `--authorization-kubeconfig=${schedConfig}`,
      '--bind-address=127.0.0.1', `--secure-port=${scheduler}`, '--leader-elect=false',
    ]);
    // Pods need their namespace's default service account, which the controller-manager makes.
    const sa = await this.api.waitFor(async () => {
      this.assertAlive();
      return (await this.api.get('/api/v1/namespaces/default/serviceaccounts/default')) ? true : undefined;
    }, READY_TIMEOUT_MS, 250, signal);
    if (!sa) throw new InfraError('infra-cluster-unreachable', `kube-controller-manager made no default service account in ${READY_TIMEOUT_MS / 1000} s (log: ${join(this.logDir, 'kube-controller-manager.log')})`);
  }

  /** A control-plane process that exited is the cluster's end: say which, with its log. */
  private assertAlive(): void {
    for (const p of this.processes) {
      if (p.child.exitCode !== undefined && p.child.exitCode !== null) {
        throw new InfraError('infra-cluster-unreachable', `${p.name} exited with ${p.child.exitCode} (log: ${join(this.logDir, `${p.name}.log`)})`);
      }
    }
  }

  /** The processes still running, for tests. */
  pids(): number[] {
    return this.processes.map((p) => p.child.pid).filter((pid): pid is number => pid !== undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // Newest first: nothing talks to a stopped apiserver or etcd.
    for (const { child } of [...this.processes].reverse()) {
      if (child.exitCode !== undefined && child.exitCode !== null) continue;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await child.catch(() => undefined);
      clearTimeout(killer);
    }
  }
}
