/**
 * Container images without a registry: `writeImageArchive` turns a staged directory into
 * a docker-archive tar (the `docker save` layout), which `ctr -n k8s.io images import`,
 * `docker load` and `kind load image-archive` accept. Shared by every lane that needs an
 * image of its own (the CRI repro's pause and client images; trigger and agent images in
 * the cluster lanes).
 *
 * The archive holds exactly three entries:
 *   manifest.json       [{ Config: "<config sha256>.json", RepoTags: [tags], Layers: ["<diff_id>/layer.tar"] }]
 *   <config sha256>.json { architecture, os, config: { Entrypoint, Cmd, Env, WorkingDir, User },
 *                          rootfs: { type: "layers", diff_ids: ["sha256:<layer sha256>"] }, history }
 *   <diff_id>/layer.tar  one uncompressed layer: the staged directory, owned by 0:0
 *
 * Invariants: the same directory and spec give the same bytes, so the same image id
 * (sorted entries, fixed mtimes, no timestamps in the config); the layer is streamed to a
 * temp file beside the output, never held in memory; `outFile` appears only complete.
 * Only directories, regular files and symlinks can be staged (a device or socket is an
 * error); hard links are stored as separate files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, open, readdir, readlink, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TarWriter } from './tar.js';

export interface ImageSpec {
  /** Full references the image is known by, e.g. `registry.k8s.io/pause:3.10.1`. */
  tag: string | readonly string[];
  /** The OCI/Go architecture name: amd64, arm64, ... (Debian's names for these two are the same). */
  arch: string;
  /** Default linux. */
  os?: string;
  /** The arch variant (`v8` for arm64), when a consumer wants it. */
  variant?: string;
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  /** `KEY=value` entries; a PATH is added when none is given, as image builders do. */
  env?: readonly string[];
  workingDir?: string;
  user?: string;
  /** The staged directory that becomes the image's single layer (its root is the image's /). */
  root: string;
  /** Seconds since the epoch for every layer entry (default 0). */
  mtime?: number;
}

export interface ImageArchive {
  file: string;
  tags: string[];
  /** `sha256:<hex>` of the config JSON: the image id `docker images` and `ctr` show. */
  imageId: string;
  /** `sha256:<hex>` of the uncompressed layer. */
  diffIds: string[];
  layerBytes: number;
  bytes: number;
}

/** The PATH image builders set when an image names none. */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The image config JSON (pure): what `docker inspect` calls Config, plus rootfs and history. */
export function imageConfig(spec: Omit<ImageSpec, 'root' | 'tag'>, diffIds: readonly string[]): Record<string, unknown> {
  const env = spec.env ?? [];
  const config: Record<string, unknown> = {
    Env: env.some((e) => e.startsWith('PATH=')) ? [...env] : [DEFAULT_PATH, ...env],
    ...(spec.entrypoint ? { Entrypoint: [...spec.entrypoint] } : {}),
    ...(spec.cmd ? { Cmd: [...spec.cmd] } : {}),
    WorkingDir: spec.workingDir ?? '/',
    ...(spec.user ? { User: spec.user } : {}),
  };
  return {
    architecture: spec.arch,
    os: spec.os ?? 'linux',
    ...(spec.variant ? { variant: spec.variant } : {}),
    config,
    rootfs: { type: 'layers', diff_ids: [...diffIds] },
    history: [{ created_by: 'bpfgate writeImageArchive' }],
  };
}

/** Writes `spec.root` as a one-layer docker-archive at `outFile` (see the module comment). */
export async function writeImageArchive(spec: ImageSpec, outFile: string): Promise<ImageArchive> {
  const tags = typeof spec.tag === 'string' ? [spec.tag] : [...spec.tag];
  if (tags.length === 0) throw new Error('writeImageArchive: expected at least one tag');
  const temp = join(dirname(outFile), `.${basename(outFile)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const layerFile = `${temp}.layer`;
  try {
    const layer = await writeLayer(spec.root, layerFile, spec.mtime ?? 0);
    const diffId = `sha256:${layer.sha256}`;
    const configJson = Buffer.from(JSON.stringify(imageConfig(spec, [diffId])));
    const configHex = createHash('sha256').update(configJson).digest('hex');
    const manifest = [{ Config: `${configHex}.json`, RepoTags: tags, Layers: [`${layer.sha256}/layer.tar`] }];

    const handle = await open(temp, 'w');
    let bytes: number;
    try {
      const tar = new TarWriter(handle, spec.mtime ?? 0);
      await tar.file('manifest.json', JSON.stringify(manifest));
      await tar.file(`${configHex}.json`, configJson);
      await tar.directory(layer.sha256);
      await tar.fileFrom(`${layer.sha256}/layer.tar`, layerFile, layer.bytes);
      await tar.end();
      bytes = tar.bytes;
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, outFile);
    return { file: outFile, tags, imageId: `sha256:${configHex}`, diffIds: [diffId], layerBytes: layer.bytes, bytes };
  } finally {
    await rm(layerFile, { force: true });
    await rm(temp, { force: true });
  }
}

/** The staged tree as one layer tar: entries sorted by bytes (parents first), 0:0, fixed mtime. */
async function writeLayer(root: string, file: string, mtime: number): Promise<{ sha256: string; bytes: number }> {
  const handle = await open(file, 'w');
  try {
    const tar = new TarWriter(handle, mtime);
    for (const rel of await treeEntries(root)) {
      const path = join(root, rel);
      const st = await lstat(path);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) await tar.directory(rel, { mode });
      else if (st.isSymbolicLink()) await tar.symlink(rel, await readlink(path));
      else if (st.isFile()) await tar.fileFrom(rel, path, st.size, { mode });
      else throw new Error(`${path}: only directories, regular files and symlinks can go into an image layer`);
    }
    await tar.end();
    return { sha256: tar.digest(), bytes: tar.bytes };
  } finally {
    await handle.close();
  }
}

/** Every path under `dir`, relative, sorted by bytes (a parent always precedes its children). */
async function treeEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const ent of await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? ent.name : `${rel}/${ent.name}`;
      out.push(path);
      if (ent.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}
