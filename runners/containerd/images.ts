/**
 * The two images the private containerd runs, built from Debian packages of the host's arch
 * (bookworm, through the private apt) and written as docker-archives (runners/oci/archive.ts)
 * that `ctr -n k8s.io images import` loads, so no registry is ever asked:
 *
 * - the pause image, under the tag containerd's CRI expects (`registry.k8s.io/pause:3.10.1`):
 *   busybox-static with the entrypoint `/bin/sleep 2147483647` (a sandbox whose process
 *   exits at once breaks CreateContainer: findings-infra.md §4);
 * - the client image: the same busybox plus Debian's own `ctr` (from the containerd package)
 *   and the libc it needs, so a container can talk to containerd through a mounted socket.
 *
 * Invariants: cached in cacheDir('containerd-images') by a hash of everything that shapes
 * their bytes (the packages' sha256, the layout below); a warm run starts no apt process
 * beyond the private apt's memoized resolution, and writes nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeAtomically } from '../../core/atomic-write.js';
import { cacheDir } from '../../core/cache.js';
import { DEBIAN_ARCH, type Arch } from '../../matrix/cell.js';
import { writeImageArchive, type ImageArchive } from '../oci/archive.js';
import { privateApt } from '../qemu/apt.js';
import { stageUserland, type GuestPackageSpec } from '../qemu/guest-image.js';

export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.1';
export const CLIENT_IMAGE = 'localhost/bpfgate/cri-client:1';

/** Bump when the way the images are assembled changes. */
const LAYOUT_VERSION = 1;
const SUITE = 'bookworm';

/** busybox applets the containers use (sleep as PID 1, stat for inodes, sh for humans). */
const APPLETS = ['sh', 'sleep', 'stat', 'cat', 'ls', 'readlink'];

const BUSYBOX: GuestPackageSpec = { package: 'busybox-static', suite: SUITE, take: [{ from: 'bin/busybox', to: 'bin/busybox', binary: true }] };
const PAUSE_PACKAGES: readonly GuestPackageSpec[] = [BUSYBOX];
const CLIENT_PACKAGES: readonly GuestPackageSpec[] = [
  BUSYBOX,
  { package: 'containerd', suite: SUITE, take: [{ from: 'usr/bin/ctr', to: 'usr/bin/ctr', binary: true }] },
  { package: 'libc6', suite: SUITE, libraries: true },
];

const SLEEP_FOREVER = ['/bin/sleep', '2147483647'];

export interface CriImages {
  pause: ImageArchive;
  client: ImageArchive;
  /** The Debian packages inside, for the evidence. */
  packages: { package: string; version: string; suite: string }[];
  origin: 'cache' | 'build';
}

/** The pause and client images for the arch, from the cache or built now. */
export async function criImages(arch: Arch, opts: { onLog?: (line: string) => void } = {}): Promise<CriImages> {
  const apt = await privateApt(opts.onLog ? { onLog: opts.onLog } : {});
  const resolved = await Promise.all(CLIENT_PACKAGES.map((p) => apt.resolve(p.package, p.suite, DEBIAN_ARCH[arch])));
  const packages = resolved.map((r) => ({ package: r.package, version: r.version, suite: r.suite }));
  const hash = createHash('sha256')
    .update(JSON.stringify({ LAYOUT_VERSION, arch, APPLETS, PAUSE_IMAGE, CLIENT_IMAGE, SLEEP_FOREVER, debs: resolved.map((r) => r.sha256) }))
    .digest('hex')
    .slice(0, 16);
  const dir = await cacheDir('containerd-images', `${arch}-${hash}`);
  const manifest = join(dir, 'images.json');
  if (existsSync(manifest)) {
    const cached = JSON.parse(await readFile(manifest, 'utf8')) as Omit<CriImages, 'origin'>;
    if (existsSync(cached.pause.file) && existsSync(cached.client.file)) return { ...cached, origin: 'cache' };
  }
  opts.onLog?.(`build images ${PAUSE_IMAGE} and ${CLIENT_IMAGE} (${arch}: ${packages.map((p) => `${p.package} ${p.version}`).join(', ')})`);
  const debs = await apt.downloadAll(resolved);
  const work = await mkdtemp(join(dir, '.build-'));
  try {
    const stage = async (name: string, specs: readonly GuestPackageSpec[]) => {
      const root = join(work, name);
      await baseTree(root);
      await stageUserland(arch, specs, resolved.slice(0, specs.length), debs.slice(0, specs.length), root, join(work, `pkg-${name}`));
      return root;
    };
    // PAUSE_PACKAGES is the first entry of CLIENT_PACKAGES: one resolution serves both.
    const pause = await writeImageArchive(
      { tag: PAUSE_IMAGE, arch: DEBIAN_ARCH[arch], entrypoint: SLEEP_FOREVER, root: await stage('pause', PAUSE_PACKAGES) },
      join(dir, 'pause.tar'),
    );
    const client = await writeImageArchive(
      { tag: CLIENT_IMAGE, arch: DEBIAN_ARCH[arch], entrypoint: SLEEP_FOREVER, root: await stage('client', CLIENT_PACKAGES) },
      join(dir, 'client.tar'),
    );
    const images: Omit<CriImages, 'origin'> = { pause, client, packages };
    await writeAtomically(manifest, `${JSON.stringify(images, null, 2)}\n`);
    await pruneOldImages(arch, dir);
    return { ...images, origin: 'build' };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Keeps the two newest image sets of an arch (a Debian update makes a new one). */
async function pruneOldImages(arch: Arch, keep: string): Promise<void> {
  const root = dirname(keep);
  const sets = await Promise.all(
    (await readdir(root)).filter((n) => n.startsWith(`${arch}-`)).map(async (n) => ({ dir: join(root, n), t: (await stat(join(root, n))).mtimeMs })),
  );
  sets.sort((a, b) => b.t - a.t);
  for (const { dir } of sets.slice(2)) if (dir !== keep) await rm(dir, { recursive: true, force: true });
}

/** What every image has besides its packages: the usual directories, root in passwd/group, the applets. */
async function baseTree(root: string): Promise<void> {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root']) await mkdir(join(root, d), { recursive: true, mode: 0o755 });
  await chmod(join(root, 'tmp'), 0o1777);
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\n');
  for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
}
