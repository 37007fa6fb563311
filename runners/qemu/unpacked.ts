/**
 * Debian packages unpacked whole into the cache (`dpkg-deb -x`), for the host tools
 * and node userland bpfgate runs from packages it does not install: etcd for a
 * cluster's control plane, containerd, runc and the CNI plugins of a node. Keyed by the
 * .deb's sha256 and renamed into place when complete, so a half-unpacked tree is never used.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../core/cache.js';
import { privateApt, type DebArch, type ResolvedPackage } from './apt.js';
import { assertToolOk, runHostTool } from './host-tools.js';

export interface UnpackedPackage {
  resolved: ResolvedPackage;
  /** The package's tree: `<root>/usr/bin/…`. */
  root: string;
}

/** The newest `name` of a suite family for `debArch`, unpacked. */
export async function unpackedPackage(name: string, suite: string, debArch: DebArch, onLog?: (line: string) => void): Promise<UnpackedPackage> {
  const apt = await privateApt(onLog ? { onLog } : {});
  const resolved = await apt.resolve(name, suite, debArch);
  const root = join(await cacheDir('unpacked'), resolved.sha256);
  if (existsSync(join(root, '.complete'))) return { resolved, root };
  const deb = await apt.download(resolved);
  const staging = `${root}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(staging, { recursive: true });
  try {
    assertToolOk(await runHostTool('dpkg-deb', ['-x', deb, staging], { providedBy: 'dpkg' }), 'infra-download', `dpkg-deb -x ${deb}`);
    await writeFile(join(staging, '.complete'), `${resolved.package} ${resolved.version} ${resolved.debArch}\n`);
    await rm(root, { recursive: true, force: true });
    await rename(staging, root);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { resolved, root };
}
