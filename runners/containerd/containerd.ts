/**
 * A private containerd on this machine: Debian's installed containerd and runc, started
 * in a private mount namespace (namespace.ts) with its own root, state and config under a
 * scratch directory, its socket at K3s's path `/run/k3s/containerd/containerd.sock` (only
 * inside that namespace; the host reaches it through `/proc/<anchor>/root/...`). The
 * system's containerd service, its socket and /run/containerd are never touched.
 *
 * Lifecycle (testcontainers' shape): `PrivateContainerd.start()` returns a started handle,
 * ready when its CRI answers `Version`; `restart()` does what K3s does to its containerd:
 * SIGTERM (containerd unlinks its socket), then a new containerd in the same namespace,
 * which binds a new socket (a new inode) and reconnects to the shims, so the containers
 * keep running. Disposing it (also on SIGINT/SIGTERM through `signal`) stops the pods
 * through CRI, stops containerd, and ends everything else the namespace holds; a handle
 * that never got ready is disposed before `start()` throws.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { InfraError } from '../../core/errors.js';
import { containerdConfig } from './config.js';
import { CriClient } from './cri.js';
import { runtimePath } from './host.js';
import { PrivateNamespace } from './namespace.js';

/** K3s's containerd socket, and its directory. */
export const K3S_SOCKET = '/run/k3s/containerd/containerd.sock';
export const K3S_SOCKET_DIR = '/run/k3s/containerd';

/** Thrown when the run's signal aborts a wait. */
export class Aborted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'Aborted';
  }
}

export interface ContainerdOptions {
  /** The CRI api.proto (cri.ts criApiProto). */
  protoPath: string;
  sandboxImage: string;
  /** Aborting stops waiting; the caller disposes the handle. */
  signal?: AbortSignal;
  /** Where the scratch directory is made; default os.tmpdir(). */
  tmpDir?: string;
  /** How long containerd may take to answer after it starts (default 30 s). */
  readyTimeoutMs?: number;
}

function findRunc(): string {
  for (const dir of runtimePath().split(':')) if (dir && existsSync(join(dir, 'runc'))) return join(dir, 'runc');
  throw new InfraError('infra-tool-missing', 'runc is not installed (apt-get install containerd runc)');
}

function tail(file: string, lines = 6): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PrivateContainerd implements AsyncDisposable {
  readonly ns: PrivateNamespace;
  readonly configFile: string;
  /** Host path of the socket, as it is now (a new inode after each restart). */
  readonly socket: string;
  private daemon: ResultPromise | undefined;
  private daemonPid: number | undefined;
  private starts = 0;
  private disposed = false;

  private constructor(ns: PrivateNamespace, configFile: string, private readonly opts: ContainerdOptions) {
    this.ns = ns;
    this.configFile = configFile;
    this.socket = ns.hostPath(K3S_SOCKET);
  }

  /** Starts containerd in a new private namespace and waits until its CRI answers. */
  static async start(opts: ContainerdOptions): Promise<PrivateContainerd> {
    const env = { PATH: runtimePath() };
    const runc = findRunc();
    const defaults = await execa('containerd', ['config', 'default'], { reject: false, env });
    if (defaults.exitCode !== 0) {
      throw new InfraError(defaults.code === 'ENOENT' ? 'infra-tool-missing' : 'infra-runtime', `containerd config default failed: ${defaults.stderr || defaults.message} (apt-get install containerd runc)`);
    }
    const scratch = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'bpfgate-containerd-'));
    let ns: PrivateNamespace;
    const configFile = join(scratch, 'config.toml');
    try {
      await writeFile(configFile, containerdConfig(defaults.stdout, { data: join(scratch, 'data'), socket: K3S_SOCKET, sandboxImage: opts.sandboxImage, runc }));
      // The cgroup parent is named after the scratch directory: one name finds the run's containers.
      ns = await PrivateNamespace.create({ scratch, cgroupParent: basename(scratch) });
    } catch (err) {
      await rm(scratch, { recursive: true, force: true });
      throw err;
    }
    const ctd = new PrivateContainerd(ns, configFile, opts);
    try {
      await ctd.launch();
    } catch (err) {
      await ctd[Symbol.asyncDispose]().catch(() => undefined);
      throw err;
    }
    return ctd;
  }

  /** The running containerd's pid. */
  get pid(): number | undefined {
    return this.daemonPid;
  }

  /** The cgroup parent every pod of this instance must use (`/<name>`): how the reaper finds containers. */
  get cgroupParent(): string {
    return `/${this.ns.cgroupParent}`;
  }

  /** A CRI client on the current socket (the caller closes it). */
  cri(deadlineMs?: number): CriClient {
    return new CriClient(this.opts.protoPath, this.socket, deadlineMs);
  }

  /** `ctr images import` of a docker-archive into CRI's namespace (k8s.io), unpacked for the snapshotter. */
  async importImage(archive: string): Promise<void> {
    const r = await execa('ctr', ['--address', this.socket, '--namespace', 'k8s.io', 'images', 'import', archive], { reject: false, env: { PATH: runtimePath() } });
    if (r.exitCode !== 0) throw new InfraError('infra-runtime', `ctr images import ${archive} failed (exit ${r.exitCode ?? '?'}): ${r.stderr.trim()}`);
  }

  /**
   * What K3s does on a restart: SIGTERM to containerd (it unlinks its socket), wait for it to
   * exit, start a new one in the same namespace. Returns whether the socket was gone in between.
   */
  async restart(): Promise<{ socketRemovedOnStop: boolean; oldPid: number | undefined; newPid: number | undefined }> {
    const oldPid = this.daemonPid;
    await this.stopDaemon();
    const socketRemovedOnStop = !existsSync(this.socket);
    await this.launch();
    return { socketRemovedOnStop, oldPid, newPid: this.daemonPid };
  }

  private logFile(): string {
    return join(this.ns.scratch, `containerd-${this.starts}.log`);
  }

  /** Starts containerd in the namespace and waits until CRI answers Version (it refuses calls before it is initialized). */
  private async launch(): Promise<void> {
    this.starts += 1;
    const log = this.logFile();
    const [enter, ...enterArgs] = this.ns.enter();
    const daemon = execa(enter as string, [...enterArgs, 'containerd', '--config', this.configFile], {
      detached: true, // own process group: a terminal's Ctrl-C must not kill it before the pods are stopped
      stdin: 'ignore',
      stdout: { file: log, append: true },
      stderr: { file: log, append: true },
      reject: false,
      env: { PATH: runtimePath() },
    });
    this.daemon = daemon;
    this.daemonPid = daemon.pid;
    let exited = false;
    void daemon.then(() => (exited = true));
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 30_000);
    let last = '';
    while (true) {
      if (this.opts.signal?.aborted) throw new Aborted();
      if (exited) throw new InfraError('infra-runtime', `containerd exited before it answered on ${K3S_SOCKET}: ${tail(log)}`);
      if (Date.now() > deadline) throw new InfraError('infra-runtime', `containerd did not answer on ${K3S_SOCKET} in ${((this.opts.readyTimeoutMs ?? 30_000) / 1000).toFixed(0)} s (${last}): ${tail(log)}`);
      if (existsSync(this.socket)) {
        using client = this.cri(2_000);
        try {
          await client.version(2_000);
          return;
        } catch (err) {
          last = (err as Error).message;
        }
      }
      await sleep(100);
    }
  }

  /** SIGTERM, then SIGKILL after 10 s; waits for the exit. */
  private async stopDaemon(): Promise<void> {
    const daemon = this.daemon;
    const pid = this.daemonPid;
    this.daemon = undefined;
    this.daemonPid = undefined;
    if (!daemon || pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([daemon.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 10_000)))]);
    clearTimeout(timer);
    if (killed) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await daemon;
    }
  }

  /**
   * Stops and removes every pod through CRI (when containerd still answers), stops
   * containerd, then ends whatever else the namespace or the run's cgroups hold and removes
   * the scratch directory (namespace.ts). Safe to call twice.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    try {
      if (this.daemon) {
        using client = this.cri(5_000);
        const pods = await client.listPodSandbox().catch(() => []);
        for (const pod of pods) {
          await client.stopPodSandbox(pod.id).catch(() => undefined);
          await client.removePodSandbox(pod.id).catch(() => undefined);
        }
      }
      await this.stopDaemon();
    } finally {
      await this.ns[Symbol.asyncDispose]();
    }
  }
}
