/**
 * Platforms by name: the one table that knows which folder of runners/ provides a
 * cell's platform. Loaded on demand, so the orchestrator imports no platform, and a
 * new platform is a folder that implements core/platform.ts plus one line here.
 */
import type { Platform } from '../core/platform.js';
import type { Platform as PlatformId } from '../matrix/cell.js';

const PLATFORMS: Partial<Record<PlatformId, () => Promise<Platform>>> = {
  qemu: async () => new (await import('./qemu/platform.js')).QemuPlatform(),
  'qemu-cluster': async () => new (await import('./qemu-cluster/platform.js')).QemuClusterPlatform(),
  kubeconfig: async () => new (await import('./kubeconfig/platform.js')).KubeconfigPlatform(),
};

/** A fresh instance of the named platform for one run, or undefined when it is not built. */
export async function loadPlatform(name: PlatformId): Promise<Platform | undefined> {
  return PLATFORMS[name]?.();
}

/** The platforms bpfgate can run cells on. */
export const BUILT_PLATFORMS = Object.keys(PLATFORMS) as PlatformId[];
