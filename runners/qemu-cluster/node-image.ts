/**
 * What a cluster node boots: the node image of its arch (Debian trixie's containerd,
 * runc, CNI plugins and their libraries, busybox, the kubelet the user gave, and the
 * image archives every node imports at boot), and the kernel modules of the cell's own
 * kernel that Debian builds as modules (virtio-net, bridge, veth, overlay; findings:
 * a node has no network and no pod bridge without them).
 *
 * Invariants: the node image is a guest image of its own family (`node`), cached by its
 * inputs like the kernel lane's; modules come from the kernel's own package, their load
 * order from their declared dependencies (modinfo), decompressed on the host, cached by
 * the package's sha256.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { assetPath } from '../../core/assets.js';
import { cacheDir } from '../../core/cache.js';
import { InfraError } from '../../core/errors.js';
import { DEBIAN_ARCH, type Arch, type DebianKernel } from '../../matrix/cell.js';
import { privateApt } from '../qemu/apt.js';
import { buildGuestImage, type GuestImage, type GuestPackageSpec } from '../qemu/guest-image.js';
import { assertToolOk, runHostTool } from '../qemu/host-tools.js';
import type { KernelArtifact } from '../qemu/kernel-cache.js';

/** A node's userland, trixie's for both arches (containerd 1.7, runc 1.1, CNI plugins 1.1). */
export const NODE_PACKAGES: readonly GuestPackageSpec[] = [
  // trixie's busybox lives in /usr/bin (merged /usr); the node's init expects /bin/busybox.
  { package: 'busybox-static', suite: 'trixie', take: [{ from: 'usr/bin/busybox', to: 'bin/busybox', binary: true }] },
  {
    package: 'containerd',
    suite: 'trixie',
    take: ['containerd', 'containerd-shim-runc-v2', 'ctr'].map((b) => ({ from: `usr/bin/${b}`, to: `usr/bin/${b}`, binary: true })),
  },
  { package: 'runc', suite: 'trixie', take: [{ from: 'usr/sbin/runc', to: 'usr/sbin/runc', binary: true }] },
  {
    package: 'containernetworking-plugins',
    suite: 'trixie',
    take: ['bridge', 'host-local', 'loopback', 'portmap'].map((b) => ({ from: `usr/lib/cni/${b}`, to: `usr/lib/cni/${b}`, binary: true })),
  },
  { package: 'libc6', suite: 'trixie', libraries: true },
  { package: 'libseccomp2', suite: 'trixie', libraries: true },
];

/** The modules a node needs, by name; their dependencies are added from modinfo. */
export const NODE_MODULES = ['virtio_net', 'bridge', 'veth', 'overlay', 'br_netfilter'] as const;

export interface NodeImageInputs {
  /** The kubelet binary of the node's arch. */
  kubelet: string;
  /** docker-archive tars imported into containerd's k8s.io namespace at boot. */
  images: readonly string[];
  onProgress?: (line: string) => void;
}

/** The node image of an arch; uncompressed: it is large, and gzip costs more than it saves under TCG. */
export async function buildNodeImage(arch: Arch, inputs: NodeImageInputs): Promise<GuestImage> {
  return buildGuestImage(arch, {
    packages: NODE_PACKAGES,
    rootfsDir: assetPath('runners', 'qemu-cluster', 'guest'),
    bpfDir: assetPath('runners', 'qemu-cluster', 'guest', 'no-bpf'),
    extraFiles: [
      { from: inputs.kubelet, to: 'usr/bin/kubelet', mode: 0o755 },
      ...inputs.images.map((from) => ({ from, to: `images/${basename(from)}`, mode: 0o644 })),
    ],
    compress: false,
    family: 'node',
    ...(inputs.onProgress ? { onProgress: inputs.onProgress } : {}),
  });
}

export interface KernelModules {
  dir: string;
  /** Module names in load order (dependencies first). */
  order: string[];
}

/** The node modules of a Debian kernel, decompressed, with their load order. */
export async function kernelModules(kernel: KernelArtifact): Promise<KernelModules> {
  if (kernel.ref.kind !== 'debian' || !kernel.package || !kernel.version || !kernel.debSha256) {
    throw new InfraError('infra-kernel-invalid', `${kernel.name}: a cluster node needs a Debian kernel package (its modules); a kernel file has none`);
  }
  const dir = join(await cacheDir('modules'), kernel.debSha256);
  const orderFile = join(dir, 'order');
  if (existsSync(orderFile)) return { dir, order: (await readFile(orderFile, 'utf8')).split('\n').filter(Boolean) };

  const ref = kernel.ref as DebianKernel;
  const apt = await privateApt();
  const resolved = await apt.resolve(kernel.package, ref.suite, DEBIAN_ARCH[kernel.arch], { version: kernel.version });
  const deb = await apt.download(resolved);
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const depends = new Map<string, string[]>();
    let wanted = new Set<string>(NODE_MODULES);
    // Extract, read each module's dependencies, extract what is still missing.
    for (let round = 0; round < 4 && wanted.size > 0; round++) {
      await extractModules(deb, staging, [...wanted]);
      const next = new Set<string>();
      for (const name of wanted) {
        const file = join(staging, `${name}.ko`);
        if (!existsSync(file)) throw new InfraError('infra-kernel-invalid', `${kernel.package} ${kernel.version} has no module ${name}`);
        const deps = await moduleDepends(file);
        depends.set(name, deps);
        for (const d of deps) if (!depends.has(d) && !wanted.has(d)) next.add(d);
      }
      wanted = next;
    }
    const order: string[] = [];
    const visit = (name: string) => {
      if (order.includes(name)) return;
      for (const d of depends.get(name) ?? []) visit(d);
      order.push(name);
    };
    for (const name of depends.keys()) visit(name);
    await writeFile(join(staging, 'order'), `${order.join('\n')}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    return { dir, order };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** `dpkg-deb --fsys-tarfile | tar -x` of the named modules (`.ko`, `.ko.xz`), flattened and decompressed. */
async function extractModules(deb: string, into: string, names: readonly string[]): Promise<void> {
  const tree = join(into, 'tree');
  await mkdir(tree, { recursive: true });
  const patterns = names.flatMap((n) => [`*/${n}.ko`, `*/${n}.ko.xz`, `*/${n}.ko.zst`]);
  const source = execa('dpkg-deb', ['--fsys-tarfile', deb], { buffer: { stdout: false }, reject: false });
  // tar exits non-zero when a pattern matches nothing (the other compressions): only missing files matter.
  await source.pipe('tar', ['-x', '-C', tree, '--wildcards', '--no-anchored', ...patterns], { reject: false });
  await source;
  for (const file of await walk(tree)) {
    const name = basename(file).replace(/\.ko(\.xz|\.zst)?$/, '');
    const target = join(into, `${name}.ko`);
    if (file.endsWith('.ko.xz')) {
      const r = await execa('xz', ['-dc', file], { encoding: 'buffer', reject: false });
      if (r.exitCode !== 0) throw new InfraError('infra-tool-missing', `xz could not decompress ${file} (apt-get install xz-utils)`);
      await writeFile(target, r.stdout);
    } else if (file.endsWith('.ko.zst')) {
      const r = await execa('zstd', ['-dc', file], { encoding: 'buffer', reject: false });
      if (r.exitCode !== 0) throw new InfraError('infra-tool-missing', `zstd could not decompress ${file} (apt-get install zstd)`);
      await writeFile(target, r.stdout);
    } else {
      await rename(file, target);
    }
  }
  await rm(tree, { recursive: true, force: true });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, ent.name);
    if (ent.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}

/** A module's declared dependencies, as kmod's modinfo reads them. */
async function moduleDepends(file: string): Promise<string[]> {
  const r = await runHostTool('modinfo', ['-F', 'depends', file], { providedBy: 'kmod' });
  assertToolOk(r, 'infra-tool-missing', `modinfo ${file}`);
  return String(r.stdout).trim().split(',').map((s) => s.trim()).filter(Boolean);
}
