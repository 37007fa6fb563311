/**
 * The Kubernetes binaries an assembled cluster runs: the control plane for the host's
 * arch (kube-apiserver, kube-controller-manager, kube-scheduler) and a kubelet for each
 * node arch. Given as directories, release tarballs (kubernetes-server-linux-amd64.tar.gz,
 * kubernetes-node-linux-arm64.tar.gz) or URLs of those, downloaded once and unpacked into
 * the cache by their sha256. Each binary's arch is read from its ELF header, never from
 * its path, so a mislabelled tarball cannot put an amd64 kubelet on an arm64 node.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { arch as hostArch } from 'node:os';
import { basename, join } from 'node:path';
import { cacheDir } from '../../core/cache.js';
import { downloadToCache, httpTransport, sha256File } from '../../core/download.js';
import { InfraError, InputError } from '../../core/errors.js';
import type { Arch } from '../../matrix/cell.js';
import { assertToolOk, runHostTool } from '../qemu/host-tools.js';

export const CONTROL_PLANE = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
const WANTED = new Set<string>([...CONTROL_PLANE, 'kubelet', 'kubectl']);

export interface KubernetesBinaries {
  /** Binary name -> arch -> path. */
  byName: Map<string, Partial<Record<Arch, string>>>;
  /** Where they were found, for messages. */
  sources: readonly string[];
}

const ELF_MACHINE: Record<number, Arch> = { 62: 'x86_64', 183: 'arm64' };

/** The arch an ELF executable is built for; undefined for anything else. */
export async function elfArch(file: string): Promise<Arch | undefined> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await handle.read(header, 0, 20, 0);
    if (bytesRead < 20 || header.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return ELF_MACHINE[header.readUInt16LE(18)];
  } finally {
    await handle.close();
  }
}

export function hostArchName(): Arch {
  return hostArch() === 'arm64' ? 'arm64' : 'x86_64';
}

/** A directory to search: the one given, or a tarball or URL unpacked into the cache. */
async function asDirectory(source: string): Promise<string> {
  let file = source;
  if (/^https?:\/\//.test(source)) {
    const url = new URL(source);
    file = await downloadToCache({ dir: await cacheDir('kubernetes', 'downloads'), name: basename(url.pathname) || 'kubernetes.tar.gz', what: `Kubernetes binaries ${source}`, transport: httpTransport(source) });
  }
  const info = await stat(file).catch((cause: unknown) => {
    throw new InputError('kubernetes-missing', source, {}, `no such file or directory: expected a directory of Kubernetes binaries, a release tarball or a URL of one`, cause);
  });
  if (info.isDirectory()) return file;
  const dir = join(await cacheDir('kubernetes', 'unpacked'), await sha256File(file));
  if (existsSync(join(dir, '.complete'))) return dir;
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  assertToolOk(await runHostTool('tar', ['-xf', file, '-C', staging], { providedBy: 'tar' }), 'infra-download', `unpacking ${file}`);
  await (await open(join(staging, '.complete'), 'w')).close();
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  return dir;
}

async function walk(dir: string, depth: number, out: string[]): Promise<void> {
  if (depth < 0) return;
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, ent.name);
    if (ent.isDirectory()) await walk(path, depth - 1, out);
    else if (ent.isFile() && WANTED.has(ent.name)) out.push(path);
  }
}

/** Every Kubernetes binary under the sources, by name and by the arch its ELF header says. */
export async function findKubernetesBinaries(sources: readonly string[]): Promise<KubernetesBinaries> {
  const byName = new Map<string, Partial<Record<Arch, string>>>();
  for (const source of sources) {
    const files: string[] = [];
    await walk(await asDirectory(source), 5, files);
    for (const file of files) {
      const arch = await elfArch(file);
      if (!arch) continue;
      const name = basename(file);
      const entry = byName.get(name) ?? {};
      entry[arch] ??= file;
      byName.set(name, entry);
    }
  }
  return { byName, sources };
}

/** The binary of `name` for `arch`, or an error that says what to give. */
export function binaryFor(found: KubernetesBinaries, name: string, arch: Arch): string {
  const path = found.byName.get(name)?.[arch];
  if (path) return path;
  const have = [...found.byName.entries()].map(([n, a]) => `${n} (${Object.keys(a).join(', ')})`).join(', ') || 'none';
  throw new InfraError(
    'infra-tool-missing',
    `no ${name} for ${arch} among the Kubernetes binaries given (${found.sources.join(', ') || 'none: pass --kubernetes'}); found: ${have}. ` +
      `Give --kubernetes with the server binaries (kubernetes-server-linux-${arch === 'x86_64' ? 'amd64' : 'arm64'}.tar.gz or a directory) and a kubelet per node arch`,
  );
}
