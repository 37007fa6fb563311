/**
 * The images the cluster suite runs, built here so that no registry is needed: the
 * trigger image (the same Debian userland the QEMU guests run triggers with: busybox,
 * perl, strace, bash and their libraries, and the USDT program at the paths the USDT
 * trigger runs it from) and the Tetragon agent image, made from a release
 * bundle with the layout of upstream's image (/usr/bin/tetragon, /usr/bin/tetra, BPF
 * objects in /var/lib/tetragon, /etc/tetragon/tetragon.conf.d, entrypoint tetragon).
 * Both are docker-archives (runners/oci) a platform imports into its nodes.
 *
 * Invariants: cached under cacheDir('cluster-images') by a hash of what shapes their
 * bytes (the tag included); the caller names the tag, the same for every arch.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../core/cache.js';
import { sha256File } from '../../core/download.js';
import { DEBIAN_ARCH, type Arch } from '../../matrix/cell.js';
import { writeImageArchive, type ImageArchive } from '../../runners/oci/archive.js';
import { privateApt } from '../../runners/qemu/apt.js';
import { compileUsdtProgram, GUEST_PACKAGES, stageUserland, USDT_SOURCE_DIR, usdtProgramIdentity, type GuestPackageSpec } from '../../runners/qemu/guest-image.js';
import type { KubeSession } from '../../runners/kube/session.js';
import { bundleFor, type TetragonBundle } from '../tetragon/bundle.js';

/** The tags the images go by on every node, whatever their arch (each node holds its own arch's). */
export const TRIGGER_IMAGE = 'localhost/bpfgate/trigger:1';
export const tetragonTag = (version: string): string => `localhost/bpfgate/tetragon:${version}`;

/** The image archives a node of `arch` holds: the trigger image, and the agent's when a bundle is given for the arch. */
export async function nodeImageFiles(arch: Arch, bundles: readonly TetragonBundle[]): Promise<string[]> {
  const bundle = bundleFor(bundles, arch);
  return [(await triggerImage(arch, TRIGGER_IMAGE)).file, ...(bundle ? [(await tetragonImage(bundle, tetragonTag(bundle.version))).file] : [])];
}

/** A session that checks nothing and only has every node hold the images (`cluster up`, the benchmark). */
export function imagesOnly(bundles: readonly TetragonBundle[]): KubeSession {
  return { planned: () => [], nodeImages: (arch) => nodeImageFiles(arch, bundles), run: async () => {} };
}

/** Bump when the way an image is assembled changes. */
const LAYOUT_VERSION = 2;

/** The trigger userland: the very packages the QEMU guests run triggers with. */
const TRIGGER_PACKAGES = GUEST_PACKAGES;

const BUSYBOX: GuestPackageSpec = TRIGGER_PACKAGES.find((p) => p.package === 'busybox-static')!;

/** BPF objects for kernels older than any cell boots stay out of the agent image. */
const OLD_KERNEL_OBJECT = /_v(310|53|511)\.o$/;

/** The file a gated trigger pod waits for before its steps (created by `kubectl exec`). */
export const TRIGGER_GATE = '/tmp/bpfgate-go';

/**
 * The trigger pod's command: the busybox applets are installed at start (the image
 * holds busybox alone; the applet list is the binary's own, whatever its arch), then the
 * trigger's steps, then its cleanup whatever the steps did; the steps' status is the pod's.
 * A gated pod waits (at most 300 s) for TRIGGER_GATE before its steps.
 */
export function triggerCommand(steps: string, cleanup: string, opts: { gated?: boolean } = {}): string[] {
  const gate = opts.gated ? `i=0; while [ ! -e ${TRIGGER_GATE} ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i+1)); done; ` : '';
  return ['/bin/busybox', 'sh', '-c', `/bin/busybox --install -s /bin; ${gate}sh -c "$1"; rc=$?; sh -c "$2"; exit $rc`, 'trigger', steps, cleanup];
}

async function imageDir(name: string, hash: string): Promise<string> {
  return cacheDir('cluster-images', `${name}-${hash.slice(0, 16)}`);
}

async function cached(dir: string): Promise<ImageArchive | undefined> {
  const manifest = join(dir, 'image.json');
  if (!existsSync(manifest)) return undefined;
  const image = JSON.parse(await readFile(manifest, 'utf8')) as ImageArchive;
  return existsSync(image.file) ? image : undefined;
}

async function remember(dir: string, image: ImageArchive): Promise<ImageArchive> {
  await writeFile(join(dir, 'image.json.tmp'), `${JSON.stringify(image, null, 2)}\n`);
  await rename(join(dir, 'image.json.tmp'), join(dir, 'image.json'));
  return image;
}

async function baseTree(root: string): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var/tmp']) await mkdir(join(root, d), { recursive: true, mode: 0o755 });
  await chmod(join(root, 'tmp'), 0o1777);
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/**
 * The trigger image of an arch, under `tag`: every node holds its own arch's image under
 * the same tag, so one pod spec serves the whole cluster.
 */
export async function triggerImage(arch: Arch, tag: string, onLog?: (line: string) => void): Promise<ImageArchive> {
  const apt = await privateApt(onLog ? { onLog } : {});
  const resolved = await Promise.all(TRIGGER_PACKAGES.map((p) => apt.resolve(p.package, p.suite, DEBIAN_ARCH[arch])));
  const usdt = await usdtProgramIdentity();
  const hash = createHash('sha256').update(JSON.stringify({ LAYOUT_VERSION, arch, tag, debs: resolved.map((r) => r.sha256), usdt })).digest('hex');
  const dir = await imageDir(`trigger-${arch}`, hash);
  const hit = await cached(dir);
  if (hit) return hit;
  onLog?.(`build the trigger image (${arch})`);
  const debs = await apt.downloadAll(resolved);
  const work = await mkdtemp(join(dir, '.build-'));
  try {
    const root = join(work, 'root');
    await baseTree(root);
    await stageUserland(arch, TRIGGER_PACKAGES, resolved, debs, root, join(work, 'pkg'));
    await compileUsdtProgram(USDT_SOURCE_DIR, root, arch);
    const image = await writeImageArchive(
      { tag, arch: DEBIAN_ARCH[arch], cmd: ['/bin/busybox', 'sh'], env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'], root },
      join(dir, 'trigger.tar'),
    );
    return remember(dir, image);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The agent image of a Tetragon bundle (its arch), laid out as upstream's image, under `tag`. */
export async function tetragonImage(bundle: TetragonBundle, tag: string, onLog?: (line: string) => void): Promise<ImageArchive> {
  const apt = await privateApt(onLog ? { onLog } : {});
  const busybox = await apt.resolve(BUSYBOX.package, BUSYBOX.suite, DEBIAN_ARCH[bundle.arch]);
  const objects = bundle.bpfObjects.filter((o) => !OLD_KERNEL_OBJECT.test(o));
  const objectHashes = await Promise.all(objects.map(async (o) => `${o}:${(await stat(join(bundle.bpfDir, o))).size}`));
  const hash = createHash('sha256')
    .update(JSON.stringify({ LAYOUT_VERSION, tag, arch: bundle.arch, version: bundle.version, tetragon: await sha256File(bundle.tetragon), tetra: await sha256File(bundle.tetra), objectHashes, busybox: busybox.sha256 }))
    .digest('hex');
  const dir = await imageDir(`tetragon-${bundle.arch}`, hash);
  const hit = await cached(dir);
  if (hit) return hit;
  onLog?.(`build the Tetragon ${bundle.version} image (${bundle.arch})`);
  const [deb] = await apt.downloadAll([busybox]);
  const work = await mkdtemp(join(dir, '.build-'));
  try {
    const root = join(work, 'root');
    await baseTree(root);
    await stageUserland(bundle.arch, [BUSYBOX], [busybox], [deb!], root, join(work, 'pkg'));
    for (const [from, to] of [[bundle.tetragon, 'usr/bin/tetragon'], [bundle.tetra, 'usr/bin/tetra']] as const) {
      await copyFile(from, join(root, to));
      await chmod(join(root, to), 0o755);
    }
    await mkdir(join(root, 'var', 'lib', 'tetragon'), { recursive: true });
    for (const o of objects) await copyFile(join(bundle.bpfDir, o), join(root, 'var', 'lib', 'tetragon', o));
    // The chart mounts its own configuration here (the defaults already name /var/lib/tetragon).
    await mkdir(join(root, 'etc', 'tetragon', 'tetragon.conf.d'), { recursive: true });
    await mkdir(join(root, 'etc', 'tetragon', 'tetragon.tp.d'), { recursive: true });
    const image = await writeImageArchive(
      { tag, arch: DEBIAN_ARCH[bundle.arch], entrypoint: ['/usr/bin/tetragon'], env: ['PATH=/usr/bin:/bin:/sbin:/usr/sbin'], root },
      join(dir, 'tetragon.tar'),
    );
    return remember(dir, image);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `repository` and `tag` of an image reference, as a chart's image values want them. */
export function splitReference(reference: string): { repository: string; tag: string } {
  const at = reference.lastIndexOf(':');
  return { repository: reference.slice(0, at), tag: reference.slice(at + 1) };
}
