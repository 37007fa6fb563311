/**
 * The host cell of the containerd platform: this machine's kernel running Debian's own
 * containerd and runc (the host packages, `apt-get install containerd runc`), started by
 * bpfgate in a private mount namespace. `describeHost` gathers its facts once, before any
 * check, like every platform's describe: arch, page size, kernel release, active LSMs, and
 * the runtime's versions for run.json's tools. A machine that cannot run it (a tool
 * missing, not root) gets facts that carry the error, so its checks are charged to it.
 */
import { readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { execa } from 'execa';
import { InfraError } from '../../core/errors.js';
import type { CellFacts } from '../../core/facts.js';
import type { Arch, PageSize } from '../../matrix/cell.js';

/** The id of the host cell: where the runtime repros run. */
export const HOST_CONTAINERD_CELL = 'host-containerd';

/** What to install when a runtime tool is missing (Debian packages). */
export const RUNTIME_PACKAGES = 'containerd runc';

/** The host tools the platform runs, and the package that ships each. */
const TOOLS: { tool: string; args: string[]; pkg: string }[] = [
  { tool: 'containerd', args: ['--version'], pkg: 'containerd' },
  { tool: 'containerd-shim-runc-v2', args: ['-v'], pkg: 'containerd' },
  { tool: 'ctr', args: ['--version'], pkg: 'containerd' },
  { tool: 'runc', args: ['--version'], pkg: 'runc' },
  { tool: 'unshare', args: ['--version'], pkg: 'util-linux' },
  { tool: 'nsenter', args: ['--version'], pkg: 'util-linux' },
];

export interface RuntimeVersions {
  /** `containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3` -> `1.6.20~ds1`. */
  containerd: string;
  runc: string;
  /** What each tool says of its version, for run.json. */
  lines: Record<string, string>;
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** PATH with the sbin directories (runc lives in /usr/sbin; a non-login root shell may lack them). */
export function runtimePath(env: NodeJS.ProcessEnv = process.env): string {
  const parts = (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  return [...parts, ...SBIN.filter((d) => !parts.includes(d))].join(':');
}

/**
 * The runtime's versions; an InfraError `infra-tool-missing` naming the packages when a tool
 * is not installed, `infra-privileges` when bpfgate is not root (a mount namespace, containerd
 * and runc need it).
 */
export async function runtimeVersions(): Promise<RuntimeVersions> {
  const env = { PATH: runtimePath() };
  const results = await Promise.all(TOOLS.map((t) => execa(t.tool, t.args, { reject: false, env })));
  const missing = TOOLS.filter((_, i) => results[i]?.code === 'ENOENT' || results[i]?.exitCode === undefined);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))];
    throw new InfraError(
      'infra-tool-missing',
      `${missing.map((m) => m.tool).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed (apt-get install ${pkgs.includes('util-linux') ? pkgs.join(' ') : RUNTIME_PACKAGES})`,
    );
  }
  if (process.getuid?.() !== 0) {
    throw new InfraError('infra-privileges', 'the containerd repros need root: a mount namespace, containerd and runc (run bpfgate as root, e.g. in CI)');
  }
  const lines: Record<string, string> = {};
  // Some print several lines (the shim, runc): kept whole, on one line.
  TOOLS.forEach((t, i) => (lines[t.tool] = String(results[i]?.stdout ?? '').split('\n').map((l) => l.trim()).filter(Boolean).join(' ')));
  return {
    containerd: /containerd\s+\S+\s+(\S+)/.exec(lines.containerd ?? '')?.[1] ?? lines.containerd ?? 'unknown',
    runc: /runc version\s+(\S+)/.exec(lines.runc ?? '')?.[1] ?? lines.runc ?? 'unknown',
    lines,
  };
}

/** Node's arch as bpfgate names it; undefined on an arch bpfgate has no cells for. */
export function hostArch(nodeArch: string = process.arch): Arch | undefined {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'arm64' : undefined;
}

async function hostPageKiB(): Promise<PageSize> {
  const r = await execa('getconf', ['PAGESIZE'], { reject: false });
  const kib = Number(r.stdout) / 1024;
  return kib === 16 || kib === 64 ? kib : 4;
}

async function activeLsm(): Promise<string[]> {
  try {
    return (await readFile('/sys/kernel/security/lsm', 'utf8')).trim().split(',').filter(Boolean);
  } catch {
    return []; // securityfs not mounted: unknown, not empty
  }
}

/** The host cell's facts (with an `error` when the runtime cannot run here) and its tools for run.json. */
export async function describeHost(cell = HOST_CONTAINERD_CELL): Promise<{ facts: CellFacts; tools: Record<string, string>; versions?: RuntimeVersions }> {
  const arch = hostArch();
  const facts: CellFacts = {
    cell,
    platform: 'containerd',
    arch: arch ?? 'x86_64',
    pageKiB: await hostPageKiB(),
    kernel: { name: 'host', release: release() },
    bootArgs: [],
    lsm: await activeLsm(),
    config: {},
  };
  if (!arch) {
    facts.error = { reason: 'infra-tool-missing', message: `bpfgate has no images for a ${process.arch} host` };
    return { facts, tools: {} };
  }
  try {
    const versions = await runtimeVersions();
    return { facts, tools: versions.lines, versions };
  } catch (err) {
    if (!(err instanceof InfraError)) throw err;
    facts.error = { reason: err.code as NonNullable<CellFacts['error']>['reason'], message: err.message };
    return { facts, tools: {} };
  }
}
