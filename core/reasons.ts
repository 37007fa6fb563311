/**
 * Stable reason codes. A reason code is part of the output contract
 * (results.jsonl, baselines, tables): extend the list, never rename an entry.
 */
export const REASONS = {
  'yaml-invalid': 'the file is not valid YAML',
  'schema-invalid': 'the document does not match the TracingPolicy CRD schema',
  'symbol-missing': 'a kprobe target is not a traceable kernel symbol on this cell, or a uprobe\'s symbol (a USDT\'s probe) is not in its binary',
  'tracepoint-missing': 'a tracepoint does not exist on this cell',
  'lsm-hook-missing': 'an LSM hook does not exist on this cell',
  'lsm-inactive': 'BPF LSM programs attach but never run: "bpf" is not in the active LSM list',
  'lsm-unsupported': 'the kernel has no BPF LSM (CONFIG_BPF_LSM)',
  'trampoline-unsupported': 'fentry/fmod_ret/LSM attach fails (no DYNAMIC_FTRACE_WITH_DIRECT_CALLS, error 524)',
  'kprobe-multi-unsupported': 'kprobe.multi attach is not supported (no CONFIG_FPROBE)',
  'uprobe-multi-unsupported': 'uprobe.multi attach is not supported (kernels before 6.6, or no CONFIG_UPROBES)',
  'tailcall-attach-type': 'a kprobe.multi program and a kprobe program may not share a tail-call map: the kernel enforces expected_attach_type for tail calls (6.12.53+), and an agent that mixes them (Tetragon v1.5.0 with multi-kprobes) fails to load',
  'override-unsupported': 'neither bpf_override_return nor fmod_ret can override this function',
  'ringbuf-pagesize': 'a BPF ring buffer smaller than the page size is refused',
  'attach-failed': 'the program failed to load or attach for a reason with no code of its own (see evidence)',
  'not-fired': 'the hook attached but no trigger made it run',
  'untested': 'no trigger exercises this policy',
  'no-hooks': 'the policy attaches nothing (no kprobes, tracepoints, lsmhooks, uprobes, usdts, enforcers or loader): it can never produce an event',
  'binary-missing': 'a uprobe or USDT names a binary this cell does not have',
  'list-too-large': 'a generated list expands to more functions on this cell than the kernel lane registers (see evidence)',
  'load-error': 'the agent refused to load the policy',
  'partially-enabled': 'the agent loaded only some of the policy hooks',
  'no-events': 'the trigger ran but the agent exported no matching event',
  'event-mismatch': 'events arrived but none matched what the trigger expects',
  'pod-metadata-missing': 'events arrived without their pod metadata',
  'cri-socket-stale': 'the CRI socket bind-mounted as a file points to a dead inode',
  'facts-mismatch': 'what the guest measured (page size, active LSMs, release) differs from the cell\'s facts gathered before the boot',
  'dmesg-splat': 'the kernel logged a warning, oops or verifier splat during the cell',
  'infra-boot-timeout': 'the guest did not reach its final marker in time',
  'infra-boot-failed': 'the guest exited or crashed before its final marker',
  'infra-download': 'a kernel, package or bundle could not be downloaded',
  'infra-tool-missing': 'a host tool bpfgate needs is not installed',
  'infra-kernel-invalid': 'the kernel image or its config file is unusable',
  'infra-guest-protocol': 'the guest output could not be parsed',
  'infra-cluster-unreachable': 'the Kubernetes API server could not be reached, or refused a call bpfgate needs',
  'infra-node-not-ready': 'a cluster node never became Ready',
  'infra-agent-not-ready': 'the agent pod on a node never became Ready (crash loop, image, configuration): its events and log tail are the evidence',
  'infra-chart': 'the agent\'s Helm chart could not be rendered or installed',
  'infra-guest-step': 'a guest step script exited non-zero (its exit status and output are the evidence)',
  'infra-guest-build': 'the guest image could not be built (a package file, a shared library or a BPF object is missing)',
  'infra-runtime': 'the container runtime bpfgate started on the host (containerd, runc) failed: it did not start, a CRI call failed, or it left something behind',
  'infra-events-lost': 'the agent counted lost events (its own metrics) while the triggers ran: a missing event may be one of them',
  'infra-privileges': 'bpfgate lacks a privilege the lane needs (root, for a private mount namespace and containerd)',
} as const;

export type Reason = keyof typeof REASONS;

export function isReason(value: string): value is Reason {
  return Object.hasOwn(REASONS, value);
}
