/**
 * containerd's configuration for a private instance: the output of the installed
 * `containerd config default`, with only the settings this machine kind and K3s's layout
 * need changed (findings-infra.md §4, findings-k8s-local.md):
 *
 * - root, state and temp under the run's data directory; the gRPC socket at K3s's path;
 * - CRI: the local pause image as sandbox image, `restrict_oom_score_adj = true` (root
 *   here lacks CAP_SYS_RESOURCE: runc fails with "can't get final child's PID from pipe"
 *   otherwise), AppArmor off (no profile is loaded into the host's kernel), CNI
 *   directories of its own (pods use the host network: no CNI runs);
 * - runc as the installed binary, cgroupfs (`SystemdCgroup = false`: no systemd needed);
 * - the opt plugin's directory moved off /opt; snapshotters this host cannot use disabled.
 *
 * Invariant: every edit names a key the default configuration has, in its section; a
 * containerd whose default lacks one (another config version) is an InfraError naming it,
 * never a silently ignored setting.
 */
import { InfraError } from '../../core/errors.js';

export type TomlValue = string | boolean | number | readonly string[];

/** One setting: the `[section]` ('' for the top level) and the key in it. */
export interface TomlEdit {
  section: string;
  key: string;
  value: TomlValue;
}

function tomlValue(v: TomlValue): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  return `[${v.map((s) => JSON.stringify(s)).join(', ')}]`;
}

/** Sets existing keys in their sections (pure); throws an InfraError `infra-runtime` for a key that is not there. */
export function patchToml(text: string, edits: readonly TomlEdit[]): string {
  const lines = text.split('\n');
  const sectionOf: string[] = [];
  let section = '';
  for (const line of lines) {
    const header = /^\s*\[([^[\]]+)\]\s*$/.exec(line);
    if (header?.[1]) section = header[1].trim();
    sectionOf.push(section);
  }
  for (const edit of edits) {
    const keyRe = new RegExp(`^(\\s*)(${edit.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}|"${edit.key}")\\s*=`);
    const at = lines.findIndex((line, i) => sectionOf[i] === edit.section && keyRe.test(line));
    if (at < 0) {
      throw new InfraError('infra-runtime', `containerd's default configuration has no ${edit.key} in [${edit.section || 'top level'}]: this containerd is not one bpfgate knows how to configure`);
    }
    const indent = keyRe.exec(lines[at] as string)?.[1] ?? '';
    lines[at] = `${indent}${edit.key} = ${tomlValue(edit.value)}`;
  }
  return lines.join('\n');
}

export interface ContainerdPaths {
  /** A directory inside the namespace's private tmpfs. */
  data: string;
  /** The gRPC socket, inside the namespace. */
  socket: string;
  sandboxImage: string;
  /** The absolute path of runc. */
  runc: string;
}

const CRI = 'plugins."io.containerd.grpc.v1.cri"';

/** The edits that turn `containerd config default` into the private instance's configuration. */
export function containerdEdits(p: ContainerdPaths): TomlEdit[] {
  return [
    { section: '', key: 'root', value: `${p.data}/root` },
    { section: '', key: 'state', value: `${p.data}/state` },
    { section: '', key: 'temp', value: `${p.data}/tmp` },
    {
      section: '',
      key: 'disabled_plugins',
      value: ['io.containerd.snapshotter.v1.aufs', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.zfs'],
    },
    { section: 'grpc', key: 'address', value: p.socket },
    { section: CRI, key: 'sandbox_image', value: p.sandboxImage },
    { section: CRI, key: 'restrict_oom_score_adj', value: true },
    { section: CRI, key: 'disable_apparmor', value: true },
    { section: `${CRI}.cni`, key: 'bin_dir', value: `${p.data}/cni/bin` },
    { section: `${CRI}.cni`, key: 'conf_dir', value: `${p.data}/cni/net.d` },
    { section: `${CRI}.containerd`, key: 'snapshotter', value: 'overlayfs' },
    { section: `${CRI}.containerd.runtimes.runc.options`, key: 'BinaryName', value: p.runc },
    { section: `${CRI}.containerd.runtimes.runc.options`, key: 'SystemdCgroup', value: false },
    { section: 'plugins."io.containerd.internal.v1.opt"', key: 'path', value: `${p.data}/opt` },
  ];
}

/** The private instance's config.toml from the default one (pure). */
export function containerdConfig(defaultConfig: string, p: ContainerdPaths): string {
  return `# Written by bpfgate: containerd config default, with the settings of a private instance.\n${patchToml(defaultConfig, containerdEdits(p))}`;
}
