/**
 * Helm, the way a user installs an agent: `helm template` first (a chart that does not
 * render is `infra-chart` with helm's own words), then `helm upgrade --install` into a
 * namespace, and `helm uninstall` afterwards. The values are bpfgate's (written to a
 * file) with the user's own files on top, in that order, as helm merges them. Helm's
 * cache, config and data live in a scratch directory: nothing of the user's is touched.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { InfraError } from '../../core/errors.js';
import { runHostTool } from '../qemu/host-tools.js';

export interface HelmRelease {
  /** The helm binary (a path, or `helm` from PATH). */
  helm: string;
  /** A chart reference, a chart directory or a packaged .tgz. */
  chart: string;
  release: string;
  namespace: string;
  kubeconfig: string;
  /** bpfgate's values, applied first. */
  values: Record<string, unknown>;
  /** The user's values files, on top. */
  valuesFiles: readonly string[];
}

async function helm(release: HelmRelease, home: string, args: string[]) {
  const env = { HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), KUBECONFIG: release.kubeconfig };
  const r = await runHostTool(release.helm, args, { env, providedBy: 'helm (not packaged in Debian: pass --helm PATH)' });
  return { ok: r.exitCode === 0, output: `${String(r.stdout)}\n${String(r.stderr)}`.trim() };
}

/** Renders and installs (or upgrades) the release; returns the rendered manifest. */
export async function helmInstall(release: HelmRelease): Promise<{ manifest: string }> {
  const home = await mkdtemp(join(tmpdir(), 'bpfgate-helm-'));
  try {
    const valuesFile = join(home, 'bpfgate-values.yaml');
    await writeFile(valuesFile, stringify(release.values));
    const common = ['--namespace', release.namespace, '-f', valuesFile, ...release.valuesFiles.flatMap((f) => ['-f', f])];
    const rendered = await helm(release, home, ['template', release.release, release.chart, ...common]);
    if (!rendered.ok) throw new InfraError('infra-chart', `helm template ${release.chart} failed: ${rendered.output.slice(-2000)}`);
    const installed = await helm(release, home, ['upgrade', '--install', release.release, release.chart, '--create-namespace', '--kubeconfig', release.kubeconfig, ...common]);
    if (!installed.ok) throw new InfraError('infra-chart', `helm upgrade --install ${release.release} failed: ${installed.output.slice(-2000)}`);
    return { manifest: rendered.output };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

export async function helmUninstall(release: Pick<HelmRelease, 'helm' | 'release' | 'namespace' | 'kubeconfig'>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'bpfgate-helm-'));
  try {
    await helm({ ...release, chart: '', values: {}, valuesFiles: [] }, home, ['uninstall', release.release, '--namespace', release.namespace, '--kubeconfig', release.kubeconfig]);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
