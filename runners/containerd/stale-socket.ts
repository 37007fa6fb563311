/**
 * The cri-socket-stale experiment at the socket level, as K3s makes it happen: a private
 * containerd with its socket at K3s's path; two pods started through CRI, one whose
 * container bind-mounts the socket file (what Tetragon's chart did up to v1.7), one that
 * mounts the socket's directory (the fix); from inside each, a call to containerd; then
 * containerd restarts (SIGTERM: it unlinks its socket; a new one binds a new inode) and
 * the same calls again. This module only observes and records; suites/repro/cri-socket.ts
 * judges the observations.
 *
 * "From inside a container" is seen two ways, each recorded: `ctr --address <socket> version`
 * run in the container (CRI ExecSync; the image holds Debian's ctr), and the host's CRI
 * client calling Version through `/proc/<container pid>/root/<socket>`, the container's own
 * view of the path. The inode the container sees is `stat -c %i` inside it.
 *
 * Invariants: every CRI call goes to the real containerd over the real socket; nothing is
 * simulated. A failed call is an observation (its error text is evidence), never thrown;
 * what stops the experiment itself (containerd not starting, a pod that cannot run) is an
 * InfraError. The containerd handle is disposed whatever happens (also when `signal` aborts).
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Arch } from '../../matrix/cell.js';
import { Aborted, K3S_SOCKET, K3S_SOCKET_DIR, PrivateContainerd } from './containerd.js';
import { CriCallError, CriClient, criApiProto, type PodSandboxConfig } from './cri.js';
import type { RuntimeVersions } from './host.js';
import { CLIENT_IMAGE, criImages, PAUSE_IMAGE } from './images.js';
import { InfraError } from '../../core/errors.js';

export type MountKind = 'file' | 'directory';

/** One call's outcome, as evidence. */
export interface CallResult {
  ok: boolean;
  /** What the call answered (ctr's output, or the runtime's name and version). */
  output?: string;
  /** The error text (ctr's stderr, or gRPC's status and message). */
  error?: string;
  /** ctr's exit code. */
  exitCode?: number;
}

/** What one container sees of the socket at one moment. */
export interface ContainerView {
  /** The inode of the socket path inside the container (`stat -c %i`); null when stat failed. */
  inode: number | null;
  statError?: string;
  /** `ctr --address <socket> version`, run inside the container. */
  ctr: CallResult;
  /** CRI Version from the host through `/proc/<container pid>/root/<socket>`. */
  cri: CallResult;
}

export interface MountObservation {
  kind: MountKind;
  /** The CRI mount: host path (in containerd's namespace) -> path in the container. */
  mount: { hostPath: string; containerPath: string };
  /** Where the socket is inside the container. */
  socketPath: string;
  container: { name: string; id: string; pid: number };
  before: ContainerView;
  after: ContainerView;
  /** The container's state after the restart, as ListContainers says (CONTAINER_RUNNING: it survived). */
  stateAfterRestart: string | undefined;
}

export interface SocketRestartObservations {
  socketPath: string;
  /** The socket's inode as containerd's namespace sees it, before and after the restart. */
  socketInode: { before: number; after: number };
  /** The socket path was gone between the two containerds (containerd unlinks it on SIGTERM). */
  socketRemovedOnStop: boolean;
  containerdPid: { before: number | undefined; after: number | undefined };
  containerd: string;
  runc: string;
  /** The private mount namespace and the cgroup parent the run used (so a test can check they are gone). */
  namespace: string;
  cgroupParent: string;
  images: { pause: string; client: string; packages: string[] };
  mounts: MountObservation[];
}

export interface ObserveOptions {
  arch: Arch;
  versions: RuntimeVersions;
  signal?: AbortSignal;
  onPhase?(phase: string, detail?: string): void;
  onLog?(line: string): void;
  /** Where the scratch directory goes (default os.tmpdir()). */
  tmpDir?: string;
}

const MOUNTS: Record<MountKind, { name: string; hostPath: string; containerPath: string }> = {
  file: { name: 'file-mount', hostPath: K3S_SOCKET, containerPath: K3S_SOCKET },
  directory: { name: 'dir-mount', hostPath: K3S_SOCKET_DIR, containerPath: K3S_SOCKET_DIR },
};

function describeError(err: unknown): string {
  if (err instanceof CriCallError) return err.describe();
  return err instanceof Error ? err.message : String(err);
}

/** Runs the experiment (see the module comment) and returns what was seen. */
export async function observeSocketRestart(opts: ObserveOptions): Promise<SocketRestartObservations> {
  const { signal } = opts;
  const checkpoint = () => {
    if (signal?.aborted) throw new Aborted();
  };
  opts.onPhase?.('prepare', `images (${PAUSE_IMAGE}, ${CLIENT_IMAGE}) and the CRI api.proto from Debian packages`);
  const [images, proto] = await Promise.all([criImages(opts.arch, opts.onLog ? { onLog: opts.onLog } : {}), criApiProto(opts.onLog ? { onLog: opts.onLog } : {})]);
  checkpoint();

  opts.onPhase?.('start', `containerd ${opts.versions.containerd} in a private mount namespace, socket ${K3S_SOCKET}`);
  await using ctd = await PrivateContainerd.start({
    protoPath: proto.path,
    sandboxImage: PAUSE_IMAGE,
    ...(signal ? { signal } : {}),
    ...(opts.tmpDir ? { tmpDir: opts.tmpDir } : {}),
  });
  await ctd.importImage(images.pause.file);
  await ctd.importImage(images.client.file);
  checkpoint();

  const containers: { kind: MountKind; name: string; id: string; pid: number }[] = [];
  {
    using cri = ctd.cri();
    for (const kind of ['file', 'directory'] as const) {
      const m = MOUNTS[kind];
      const pod: PodSandboxConfig = {
        metadata: { name: `bpfgate-${m.name}`, namespace: 'bpfgate', uid: randomUUID(), attempt: 0 },
        // containerd then writes resolv.conf itself instead of copying the host's (which may live in the host's /run).
        dns_config: { servers: ['127.0.0.1'] },
        linux: { cgroup_parent: ctd.cgroupParent, security_context: { namespace_options: { network: 'NODE' } } },
      };
      try {
        const podId = await cri.runPodSandbox(pod);
        const id = await cri.createContainer(podId, { metadata: { name: m.name }, image: { image: CLIENT_IMAGE }, mounts: [{ host_path: m.hostPath, container_path: m.containerPath }] }, pod);
        await cri.startContainer(id);
        containers.push({ kind, name: m.name, id, pid: await cri.containerPid(id) });
      } catch (err) {
        if (signal?.aborted) throw new Aborted();
        throw new InfraError('infra-runtime', `the ${m.name} pod could not be started through CRI: ${describeError(err)}`, err);
      }
      checkpoint();
    }
  }
  opts.onPhase?.('containers', `${containers.map((c) => `${c.name} (pid ${c.pid})`).join(' and ')} running`);

  const socketInode = async () => (await stat(ctd.socket)).ino;
  const look = async (): Promise<Map<MountKind, ContainerView>> => {
    using cri = ctd.cri();
    const views = new Map<MountKind, ContainerView>();
    for (const c of containers) {
      checkpoint();
      views.set(c.kind, await containerView(cri, proto.path, c.id, c.pid));
    }
    return views;
  };

  const before = { inode: await socketInode(), pid: ctd.pid, views: await look() };
  checkpoint();
  opts.onPhase?.('restart', 'containerd: SIGTERM (it unlinks its socket), then a new containerd in the same namespace');
  const restart = await ctd.restart();
  checkpoint();
  const afterInode = await socketInode();
  const states = await (async () => {
    using cri = ctd.cri();
    return new Map((await cri.listContainers()).map((c) => [c.id, c.state] as const));
  })();
  const afterViews = await look();
  opts.onPhase?.('observed', `socket inode ${before.inode} -> ${afterInode}`);

  return {
    socketPath: K3S_SOCKET,
    socketInode: { before: before.inode, after: afterInode },
    socketRemovedOnStop: restart.socketRemovedOnStop,
    containerdPid: { before: before.pid, after: restart.newPid },
    containerd: opts.versions.containerd,
    runc: opts.versions.runc,
    namespace: ctd.ns.id,
    cgroupParent: ctd.cgroupParent,
    images: { pause: PAUSE_IMAGE, client: CLIENT_IMAGE, packages: images.packages.map((p) => `${p.package} ${p.version}`) },
    mounts: containers.map((c) => ({
      kind: c.kind,
      mount: { hostPath: MOUNTS[c.kind].hostPath, containerPath: MOUNTS[c.kind].containerPath },
      socketPath: K3S_SOCKET,
      container: { name: c.name, id: c.id, pid: c.pid },
      before: before.views.get(c.kind) as ContainerView,
      after: afterViews.get(c.kind) as ContainerView,
      stateAfterRestart: states.get(c.id),
    })),
  };
}

/** What one container sees: the socket's inode, ctr's answer from inside, and CRI through its view of the path. */
async function containerView(cri: CriClient, protoPath: string, id: string, pid: number): Promise<ContainerView> {
  // An exec that the runtime itself refuses is an observation too (exit -1, the error as stderr).
  const exec = (cmd: string[]) => cri.execSync(id, cmd).catch((err: unknown) => ({ exitCode: -1, stdout: '', stderr: `ExecSync: ${describeError(err)}` }));
  const statRun = await exec(['stat', '-c', '%i', K3S_SOCKET]);
  const inode = statRun.exitCode === 0 && /^\d+$/.test(statRun.stdout.trim()) ? Number(statRun.stdout.trim()) : null;
  const ctrRun = await exec(['ctr', '--address', K3S_SOCKET, 'version']);
  const ctr: CallResult = {
    ok: ctrRun.exitCode === 0,
    exitCode: ctrRun.exitCode,
    ...(ctrRun.stdout.trim() ? { output: ctrRun.stdout.trim().replace(/\s*\n\s*/g, '; ') } : {}),
    ...(ctrRun.stderr.trim() ? { error: ctrRun.stderr.trim() } : {}),
  };
  let criCall: CallResult;
  using inside = new CriClient(protoPath, `/proc/${pid}/root${K3S_SOCKET}`, 5_000);
  try {
    const v = await inside.version(5_000);
    criCall = { ok: true, output: `${v.runtime_name} ${v.runtime_version} (CRI ${v.runtime_api_version})` };
  } catch (err) {
    criCall = { ok: false, error: describeError(err) };
  }
  return { inode, ...(inode === null ? { statError: (statRun.stderr || statRun.stdout).trim() } : {}), ctr, cri: criCall };
}
