/**
 * bpfgate's download and build cache. Kernels, guest images and schemas are
 * cached by content, so the directory can be shared between runs and CI jobs.
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** $BPFGATE_CACHE, else $XDG_CACHE_HOME/bpfgate, else ~/.cache/bpfgate. */
export function cacheRoot(): string {
  const explicit = process.env.BPFGATE_CACHE;
  if (explicit) return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'bpfgate');
}

/** A subdirectory of the cache, created on demand. */
export async function cacheDir(...parts: string[]): Promise<string> {
  const dir = join(cacheRoot(), ...parts);
  await mkdir(dir, { recursive: true });
  return dir;
}
