/**
 * A private mount namespace on the host for a runtime bpfgate starts itself (containerd,
 * its shims, runc and the containers), and the reaper that makes sure none of it outlives
 * the run.
 *
 * The namespace is held by an anchor process (`unshare --mount --propagation private`, a
 * small sh script, in its own process group so a terminal's Ctrl-C reaches only bpfgate).
 * Inside it, and only there, a tmpfs covers /run (so K3s's /run/k3s/containerd and the
 * paths containerd hard-codes, /run/containerd/s for shim sockets and /run/containerd/runc,
 * are the namespace's own: the host's /run is never written) and another covers the scratch
 * directory's `data/` (containerd's root and state). The host reaches a path inside
 * through `/proc/<anchor>/root/...`.
 *
 * Invariants:
 * - What runs there is found without trusting bookkeeping: every process whose
 *   /proc/<pid>/ns/mnt is the namespace's (anchor, containerd, shims), plus every process in
 *   the run's cgroup subtree `/<cgroupParent>` in any cgroup hierarchy (the containers, which
 *   have mount namespaces of their own). `dispose` kills them all, waits until none is left
 *   (the namespace and its tmpfs mounts die with the last one), removes the cgroup subtree,
 *   and removes the scratch directory.
 * - Whatever way bpfgate ends: on process exit every such process but the anchor is
 *   SIGKILLed at once (as runners/qemu/vm.ts does with QEMU); and the anchor watches bpfgate's
 *   pid, so after a SIGKILL of bpfgate it kills what is left, removes the cgroups and the
 *   scratch directory, and exits, taking the namespace with it.
 * - The host's mount table never changes: `--propagation private` keeps every mount inside.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { InfraError } from '../../core/errors.js';

/** The anchor: mounts, says ready, then watches bpfgate (see the module comment). */
export const ANCHOR_SCRIPT = `# bpfgate: anchor of a private mount namespace. Arguments: scratch dir, data dir, bpfgate pid, cgroup parent.
set -eu
scratch=$1 data=$2 owner=$3 cg=$4
trap '' INT HUP PIPE
mount -t tmpfs -o mode=0755,size=64m bpfgate-run /run
mkdir -p /run/k3s/containerd /run/containerd
mount -t tmpfs -o mode=0700 bpfgate-data "$data"
echo ready
exec >/dev/null 2>&1
while kill -0 "$owner"; do sleep 1; done
# bpfgate ended without cleaning up (it was killed): end everything it started here, that is
# every process in this mount namespace (one find over /proc) and in the run's cgroups.
set +e
pat=$(readlink /proc/$$/ns/mnt | sed 's/[][]/\\\\&/g')
tops=$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$cg")
i=0
while [ $i -lt 100 ]; do
  i=$((i + 1))
  pids=$(find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "$pat" 2>/dev/null | cut -d/ -f3; [ -n "$tops" ] && find $tops -name cgroup.procs -exec cat {} +)
  alive=
  for p in $pids; do [ "$p" != "$$" ] && [ -e "/proc/$p" ] && alive="$alive $p"; done
  [ -z "$alive" ] && break
  kill -9 $alive
  sleep 0.1
done
umount -l "$data"
rm -rf "$scratch"
[ -n "$tops" ] && find $tops -depth -type d -exec rmdir {} \\;
`;

/** The mount namespace id of a process (`mnt:[4026532176]`), or undefined when it is gone or unreadable. */
export function mountNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Every process whose mount namespace is `ns`. */
export function pidsInMountNamespace(ns: string): number[] {
  return allPids().filter((pid) => pid !== process.pid && mountNamespaceOf(pid) === ns);
}

/** The mount points of every cgroup hierarchy (v1 controllers and the unified one), from /proc/self/mountinfo. */
export function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // `36 25 0:31 / /sys/fs/cgroup/memory rw,... shared:15 - cgroup cgroup rw,memory`
    const [left, right] = line.split(' - ');
    const fstype = right?.split(' ')[0];
    const mountPoint = left?.split(' ')[4];
    if (mountPoint && (fstype === 'cgroup' || fstype === 'cgroup2')) out.push(mountPoint.replace(/\\040/g, ' '));
  }
  return out;
}

/** The directories of cgroup `/<parent>` and below, in every hierarchy, deepest first. */
export function cgroupDirs(parent: string): string[] {
  const dirs: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name));
    dirs.push(dir);
  };
  for (const mount of cgroupMounts()) {
    const top = join(mount, parent);
    if (existsSync(top)) walk(top);
  }
  return dirs;
}

/** Every process in cgroup `/<parent>` or below, in any hierarchy. */
export function pidsInCgroup(parent: string): number[] {
  const pids = new Set<number>();
  for (const dir of cgroupDirs(parent)) {
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (/^\d+$/.test(p)) pids.add(Number(p));
    } catch {
      // removed meanwhile
    }
  }
  pids.delete(process.pid);
  return [...pids];
}

/** Removes the cgroup subtree `/<parent>` (empty cgroups only); returns what could not be removed. */
export function removeCgroups(parent: string): string[] {
  const left: string[] = [];
  for (const dir of cgroupDirs(parent)) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left.push(dir);
    }
  }
  return left;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Namespaces alive in this process; the exit hook below kills what runs in them. */
const LIVE = new Set<PrivateNamespace>();
process.once('exit', () => {
  for (const ns of LIVE) ns.killAllSync({ spareAnchor: true });
});

export interface NamespaceOptions {
  /** The scratch directory (it exists): removed when the namespace is disposed. */
  scratch: string;
  /** The cgroup parent the runtime is told to put its containers under: `/<cgroupParent>`. */
  cgroupParent: string;
  /** How long the anchor may take to mount and say ready. */
  readyTimeoutMs?: number;
}

/** A running private mount namespace; dispose it to end everything in it and remove its scratch. */
export class PrivateNamespace implements AsyncDisposable {
  readonly scratch: string;
  /** `<scratch>/data`: a tmpfs inside the namespace, an empty directory outside. */
  readonly dataDir: string;
  readonly cgroupParent: string;
  readonly anchorPid: number;
  /** `mnt:[<inode>]`. */
  readonly id: string;
  private readonly anchor: ResultPromise;
  private disposed = false;

  private constructor(opts: NamespaceOptions, anchor: ResultPromise, id: string) {
    this.scratch = opts.scratch;
    this.dataDir = join(opts.scratch, 'data');
    this.cgroupParent = opts.cgroupParent;
    this.anchor = anchor;
    this.anchorPid = anchor.pid as number;
    this.id = id;
  }

  /** Starts the anchor and waits until its mounts are in place. */
  static async create(opts: NamespaceOptions): Promise<PrivateNamespace> {
    const dataDir = join(opts.scratch, 'data');
    await mkdir(dataDir, { recursive: true });
    const script = join(opts.scratch, 'anchor.sh');
    await writeFile(script, ANCHOR_SCRIPT, { mode: 0o755 });
    const anchor = execa('unshare', ['--mount', '--propagation', 'private', '--', 'sh', script, opts.scratch, dataDir, String(process.pid), opts.cgroupParent], {
      detached: true, // its own process group: Ctrl-C in a terminal reaches bpfgate, which cleans up in order
      stdin: 'ignore',
      buffer: false,
      reject: false,
    });
    const output: string[] = [];
    let ready = false;
    const said = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        output.push(chunk.toString());
        if (!ready && output.join('').includes('ready\n')) {
          ready = true;
          resolve();
        }
      };
      anchor.stdout?.on('data', onData);
      anchor.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    });
    const timeoutMs = opts.readyTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      said.then(() => 'ready' as const),
      anchor.then((r) => (r.code === 'ENOENT' ? ('missing' as const) : ('exited' as const))),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]);
    clearTimeout(timer);
    const id = anchor.pid === undefined ? undefined : mountNamespaceOf(anchor.pid);
    if (outcome !== 'ready' || id === undefined || id === mountNamespaceOf('self')) {
      if (anchor.pid !== undefined) kill(anchor.pid, 'SIGKILL');
      await anchor;
      await rm(opts.scratch, { recursive: true, force: true });
      const text = output.join('').trim().split('\n').slice(-4).join(' | ');
      if (outcome === 'missing') throw new InfraError('infra-tool-missing', 'unshare is not installed (apt-get install util-linux)');
      throw new InfraError(
        /Operation not permitted|Permission denied/.test(text) ? 'infra-privileges' : 'infra-runtime',
        `could not make a private mount namespace (unshare --mount ${outcome === 'timeout' ? `gave no answer in ${timeoutMs / 1000} s` : 'failed'})${text ? `: ${text}` : ''}`,
      );
    }
    const ns = new PrivateNamespace(opts, anchor, id);
    LIVE.add(ns);
    return ns;
  }

  /** The host's path to a path inside the namespace (through the anchor's root). */
  hostPath(inside: string): string {
    return `/proc/${this.anchorPid}/root${inside.startsWith('/') ? '' : '/'}${inside}`;
  }

  /** The argv prefix that runs a command inside the namespace. */
  enter(): string[] {
    return ['nsenter', `--target=${this.anchorPid}`, '--mount', '--'];
  }

  /** Every process of the run: in the namespace, or in the run's cgroup subtree (containers). */
  processes(opts: { spareAnchor?: boolean } = {}): number[] {
    const pids = new Set([...pidsInMountNamespace(this.id), ...pidsInCgroup(this.cgroupParent)]);
    if (opts.spareAnchor) pids.delete(this.anchorPid);
    return [...pids];
  }

  /** SIGKILLs every process of the run at once (for the exit hook: synchronous). */
  killAllSync(opts: { spareAnchor?: boolean } = {}): void {
    for (const pid of this.processes(opts)) kill(pid, 'SIGKILL');
  }

  /**
   * Kills every process of the run (the anchor last), waits until none is left, removes
   * the cgroup subtree and the scratch directory. Throws an InfraError `infra-runtime`
   * naming what could not be removed; safe to call twice.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const deadline = Date.now() + 10_000;
    let left = this.processes({ spareAnchor: true });
    while (left.length > 0 && Date.now() < deadline) {
      for (const pid of left) kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 50));
      left = this.processes({ spareAnchor: true });
    }
    kill(this.anchorPid, 'SIGKILL');
    await this.anchor;
    while (Date.now() < deadline && this.processes().length > 0) await new Promise((r) => setTimeout(r, 50));
    LIVE.delete(this);
    const stillRunning = this.processes();
    // A cgroup empties a moment after its last process is reaped.
    let cgroupsLeft = removeCgroups(this.cgroupParent);
    while (cgroupsLeft.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      cgroupsLeft = removeCgroups(this.cgroupParent);
    }
    await rm(this.scratch, { recursive: true, force: true });
    if (stillRunning.length > 0 || cgroupsLeft.length > 0) {
      throw new InfraError(
        'infra-runtime',
        `the private containerd left ${stillRunning.length ? `processes ${stillRunning.join(', ')}` : ''}${stillRunning.length && cgroupsLeft.length ? ' and ' : ''}${cgroupsLeft.length ? `cgroups ${cgroupsLeft.join(', ')}` : ''} behind`,
      );
    }
  }
}
