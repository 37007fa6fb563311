/**
 * What to do about each reason code: the sentence a report shows under every cell that
 * is not green. `ADVICE` has one text per code of core/reasons.ts (a unit test holds
 * it to that); `adviceFor` picks a sharper text where the evidence says more (the
 * syscall symbol a policy hard-coded, the cell's arch and kernel, its LSM list).
 * Invariant: pure, no I/O; the texts name fixes, never guesses about the user's setup.
 */
import type { Evidence } from '../core/check.js';
import { kernelAtLeast, kernelVersion } from '../core/facts.js';
import type { Reason } from '../core/reasons.js';

/** The advice for a reason, whatever the evidence. */
const ADVICE_TEXT = {
  'yaml-invalid': 'Fix the YAML at the line shown (indentation, a tab, an unquoted ": "); `bpfgate lint FILE` prints the same error.',
  'schema-invalid': 'Make the field the evidence names match the TracingPolicy CRD of the Tetragon you deploy (`bpfgate lint --schema CRD FILE`); unknown fields are refused, as `kubectl apply --validate=strict` does.',
  'symbol-missing': 'Hook a function that exists on every kernel you target (check /proc/kallsyms there), or mark an optional call with `ignore: {callNotFound: true}`.',
  'tracepoint-missing': 'This kernel has no such tracepoint: hook one that exists on every kernel you target (/sys/kernel/tracing/events), or a kprobe on the function behind it.',
  'lsm-hook-missing': 'This kernel has no such LSM hook (it is newer or older than the kernel): hook one that exists here, or a kprobe on the security_* function.',
  'lsm-inactive': 'Add `bpf` to the kernel\'s `lsm=` boot parameter (or CONFIG_LSM), keeping the other LSMs: BPF LSM programs attach without it and never run.',
  'lsm-unsupported': 'Use a kernel built with CONFIG_BPF_LSM=y, or watch with a kprobe on the security_* function instead of an LSM hook (observation only: no enforcement by return value).',
  'trampoline-unsupported': 'fentry, fmod_ret and LSM programs need BPF trampolines (DYNAMIC_FTRACE_WITH_DIRECT_CALLS): use a kprobe instead (`kprobes:` on the security_* function), or a kernel that has them.',
  'kprobe-multi-unsupported': 'The kernel has no kprobe.multi (CONFIG_FPROBE): Tetragon detects this and attaches one kprobe per function instead (slower to load, same events); nothing to change in the policy. A kernel you build can enable CONFIG_FPROBE.',
  'uprobe-multi-unsupported': 'The kernel has no uprobe.multi (added in 6.6): Tetragon then attaches one uprobe per symbol (same events); nothing to change in the policy.',
  'tailcall-attach-type': 'Tetragon v1.5.0 mixes kprobe.multi and kprobe programs in one tail-call map, which kernels with the tail-call attach-type enforcement (6.12.53+, Debian 6.12.57+) refuse: upgrade to Tetragon >= 1.6, or run the agent with `--disable-kprobe-multi`.',
  'override-unsupported': 'This kernel cannot override the function\'s return: `bpf_override_return` needs CONFIG_BPF_KPROBE_OVERRIDE and a function on the error-injection list, fmod_ret needs trampolines. Use a `Sigkill` action, or enforce at an LSM hook (`lsmhooks:` with `Override`) where BPF LSM is active.',
  'ringbuf-pagesize': 'A BPF ring buffer must be a multiple of the page size: size it from the page size (16384 on 16K-page arm64), not a fixed 4096 bytes; an agent with a hard-coded 4096-byte ring buffer cannot load on this kernel.',
  'attach-failed': 'Read the kernel\'s words in the evidence; the verifier log and dmesg are in cells/<cell>/serial.log of the run\'s output.',
  'not-fired': 'The hook attached and the triggers meant for it ran, but the kernel took another path on this cell (an inlined function, another syscall variant): hook the function that path reaches (the trigger\'s evidence lists the hooks that did fire).',
  'untested': 'No trigger exercises this policy: add a trigger that does what it watches (suites/triggers/catalogue, or `--triggers FILES`). Untested is never a pass.',
  'load-error': 'The agent refused the policy: its words are in the evidence. Fix the field it names, and lint the policy against the CRD of that agent version.',
  'partially-enabled': 'Some hooks of the policy loaded and others did not: the evidence names the failing hook; fix it, remove it, or mark an optional call with `ignore: {callNotFound: true}`.',
  'no-events': 'The trigger ran and the agent exported nothing for it: check that the policy\'s selectors let the trigger\'s process through (matchBinaries, matchArgs), that the export filters do not drop it, and that its hook fired on the kernel lane.',
  'event-mismatch': 'Events arrived, but not the one expected: compare the nearest event and its differences (evidence) with the trigger\'s `expect` (argument types, paths, the action a selector applied).',
  'pod-metadata-missing': 'Events arrived without their pod: turn on the agent\'s CRI lookup (`tetragon.cri`, `tetragon.cgidmap`) and mount the runtime socket\'s directory, not the socket file.',
  'cri-socket-stale': 'Mount the CRI socket\'s directory (e.g. /run/k3s/containerd), not the socket file: a runtime restart (K3s restarts containerd) makes a new socket inode, and a file bind mount keeps the dead one. Restarting the agent after the runtime also recovers it.',
  'facts-mismatch': 'The guest measured something other than the cell\'s facts (page size, LSM list, release): check the kernel file and boot parameters of the matrix; verdicts on this cell are suspect until they agree.',
  'dmesg-splat': 'The kernel logged a warning, oops or verifier splat: read cells/<cell>/serial.log around it; a kernel BUG with a policy that provokes it is worth a kernel bug report.',
  'infra-boot-timeout': 'The guest did not finish in time (emulated cells are slow): raise `--timeout`, lower `--jobs`, or use KVM (`BPFGATE_ACCEL=kvm`), then run again with `--resume`.',
  'infra-boot-failed': 'The guest stopped before its end: read cells/<cell>/serial.log (panic, init failure), then run again with `--resume`.',
  'infra-download': 'A download failed: check the network and the apt sources (or BPFGATE_DEBIAN_MIRROR), then `--resume`; what is cached is reused.',
  'infra-tool-missing': 'Install the host tool the evidence names (`scripts/setup-host.sh` installs them all), then run again with `--resume`.',
  'infra-kernel-invalid': 'The kernel image or its config file is unusable: check the file the matrix names, or remove it from the cache so that it is fetched again.',
  'infra-guest-protocol': 'The guest\'s console output could not be read: run the cell again (`--resume`); if it repeats, report it with cells/<cell>/serial.log.',
  'infra-cluster-unreachable': 'The API server did not answer or refused a call: check the kubeconfig, the network path and the RBAC rights for the call the evidence names.',
  'infra-node-not-ready': 'The node never became Ready: read its kubelet and runtime logs in cells/<node>/ and the node\'s conditions.',
  'infra-agent-not-ready': 'The agent pod never became Ready: its events and log tail in the evidence say why (image, crash loop, a flag it refuses).',
  'infra-chart': 'Helm could not render or install the agent\'s chart: check `--chart`, `--helm-values` and the helm binary (`--helm`).',
  'infra-guest-step': 'A guest step failed: its exit status and output are the evidence; run again with `--resume`, and report it if it repeats.',
  'infra-guest-build': 'The guest image could not be built: run scripts/setup-host.sh (busybox-static, clang with the bpf target, cpio), then run again.',
  'infra-runtime': 'The container runtime bpfgate started on the host failed: its log is in the evidence; check that containerd and runc are installed and run again.',
  'infra-events-lost': 'The agent counted lost events while the triggers ran, so a missing event may be one of them: run fewer noisy policies per cell (or KVM instead of emulation) and run again; the failure it would have been is in the evidence.',
  'infra-privileges': 'Run as root: the lane needs a private mount namespace and its own containerd.',
  'binary-missing': 'The binary a uprobe or USDT names does not exist on this cell, and the probe needs its file when the policy loads: point the policy at the path the target systems use, or install the binary there.',
  'no-hooks': 'The policy attaches nothing, so it can never produce an event: add the hooks it is meant to have (kprobes, tracepoints, lsmhooks, uprobes, usdts), or remove it.',
  'list-too-large': 'This generated list (every syscall, or an ftrace pattern) expands to more functions on this cell than the kernel lane registers, so this lane cannot judge it: narrow the list to the functions the policy needs, or judge it with the agent (`--suite tetragon`). The evidence has the count.',
} as const;

/** One advice text per reason code; extra entries are codes on their way into core/reasons.ts. */
export const ADVICE: Readonly<Record<Reason, string>> & Readonly<Record<string, string>> = ADVICE_TEXT;

/** What a piece of advice is about: the reason, the evidence of the check that has it, and the cell. */
export interface AdviceInput {
  reason: Reason;
  evidence: Evidence;
  /** The check name (`hooks`, `portability`, `tetragon:load`, ...). */
  check?: string;
  cell?: { arch: string | null; kernel: string | null; lsm: string[] | null; pages: number | null; node?: { criSocket: string } | null };
}

const X64_SYSCALL = /__(x64|ia32|arm64)_sys_([A-Za-z0-9_]+)/;

/** A known kernel series older than MAJOR.MINOR (an unknown one is not). */
const before = (kernel: string | null | undefined, major: number, minor: number): boolean =>
  kernelVersion(kernel ?? '')[0] > 0 && !kernelAtLeast(kernel ?? '', major, minor);

/** The advice for one failing check, sharpened by its evidence and cell where that says more. */
export function adviceFor(input: AdviceInput): string {
  const { reason, evidence, cell } = input;
  const text = JSON.stringify(evidence);
  switch (reason) {
    case 'symbol-missing': {
      const sys = X64_SYSCALL.exec(text);
      if (sys) {
        return `The policy hard-codes the arch-specific symbol \`${sys[0]}\`: write the syscall as \`sys_${sys[2]}\` with \`syscall: true\`, and the agent picks the symbol of each arch.`;
      }
      if (/uprobe|usdt/i.test(`${input.check ?? ''} ${text}`) && !/kprobe:/.test(text)) {
        return 'The binary on this cell has no such symbol (or USDT probe): check the target\'s binary with `nm -D` (`readelf -n` for USDT notes); symbols and probes differ between builds and versions.';
      }
      const noSyscall = /(\w+) has no (\w+) syscall/.exec(text);
      if (noSyscall) {
        return `${noSyscall[1]} has no \`${noSyscall[2]}\` syscall, so nothing calls it there: hook the syscall its libc uses instead (e.g. \`sys_openat\` for \`sys_open\`, \`sys_dup3\` for \`sys_dup2\`), or mark the call with \`ignore: {callNotFound: true}\`.`;
      }
      return ADVICE[reason];
    }
    case 'lsm-inactive': {
      const lsm = cell?.lsm?.filter((l) => l !== 'bpf');
      return lsm && lsm.length
        ? `Add \`bpf\` to the kernel's \`lsm=\` boot parameter, keeping the others: \`lsm=${[...lsm, 'bpf'].join(',')}\` (or CONFIG_LSM). Without it BPF LSM programs attach and never run.`
        : ADVICE[reason];
    }
    case 'trampoline-unsupported':
      if (cell?.arch === 'arm64' && before(cell.kernel, 6, 4)) {
        return `arm64 before 6.4 has no direct calls for BPF trampolines (DYNAMIC_FTRACE_WITH_DIRECT_CALLS), so LSM, fentry and fmod_ret programs cannot attach on ${cell.kernel}: hook the security_* function with a kprobe instead, or run 6.4 or later.`;
      }
      return ADVICE[reason];
    case 'ringbuf-pagesize':
      if (cell?.pages && cell.pages > 4) {
        return `This kernel has ${cell.pages}K pages and refuses a BPF ring buffer smaller than ${cell.pages * 1024} bytes: size ring buffers from the page size, not a fixed 4096; an agent with a hard-coded 4096-byte buffer cannot load here.`;
      }
      return ADVICE[reason];
    case 'override-unsupported':
      if (/fmod-ret/.test(text)) {
        return 'fmod_ret needs BPF trampolines and a function on the error-injection list, and this kernel gives neither for this function: use a `Sigkill` action, or enforce at an LSM hook where BPF LSM is active.';
      }
      return ADVICE[reason];
    case 'cri-socket-stale': {
      const socket = cell?.node?.criSocket;
      const dir = socket && socket.includes('/') ? socket.slice(0, socket.lastIndexOf('/')) : null;
      return socket && dir
        ? `Mount the socket's directory \`${dir}\` into the agent, not the socket file \`${socket}\`: the runtime's restart (K3s restarts containerd) made a new socket inode, and the file bind mount still holds the dead one. Restarting the agent after the runtime also recovers it.`
        : ADVICE[reason];
    }
    case 'not-fired': {
      const claimed = evidence.claimedBy;
      return Array.isArray(claimed) && claimed.length
        ? `${ADVICE[reason]} Triggers that claim these hooks: ${claimed.slice(0, 5).join(', ')}${claimed.length > 5 ? ', ...' : ''}.`
        : ADVICE[reason];
    }
    default:
      return ADVICE[reason] ?? REASONLESS;
  }
}

/** For a code this build does not know (a newer results file). */
const REASONLESS = 'See the evidence.';
