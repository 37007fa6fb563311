/**
 * One QEMU guest: boot a kernel with an initramfs, stream the console to
 * serial.log and to the protocol parser, and end the guest on its own "done"
 * record, on exit, or on the timeout, whichever comes first.
 *
 * Invariants: QEMU runs in its own process group and the whole group is killed
 * on timeout or dispose (QEMU stays alive, paused, after a KVM internal error);
 * QEMU's exit code is never taken as success: only the guest's "done" record is.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { InfraError } from '../../core/errors.js';
import type { Arch } from '../../matrix/cell.js';
import { ConsoleParser, type GuestRecord, type ProtocolProblem } from './protocol.js';

export type Accel = 'tcg' | 'kvm';

export interface GuestSpec {
  arch: Arch;
  kernel: string;
  initrd: string;
  /** Kernel command line parameters beyond the console and panic settings. */
  append: string[];
  accel: Accel;
  timeoutMs: number;
  serialLog: string;
  memoryMiB?: number;
  smp?: number;
  /** Stop as soon as this console marker is seen (the raw-boot baseline has no records). */
  doneMarker?: string;
  /** Aborting kills the guest at once (an interrupted run). */
  signal?: AbortSignal;
  /**
   * QEMU user networking (no host interface, no privileges): the guest reaches the host's
   * loopback at 10.0.2.2, and each forward makes a guest port reachable at a host address.
   * The network is 10.0.0.0/8 so that traffic from a pod bridge behind the guest (proxy ARP)
   * still gets an answer.
   */
  network?: { forwards: { hostAddress: string; hostPort: number; guestPort: number }[] };
}

/** The address of the host's loopback as a guest on QEMU user networking sees it. */
export const HOST_FROM_GUEST = '10.0.2.2';
/** The guest's own address on QEMU user networking. */
export const GUEST_ADDRESS = '10.0.2.15';

function networkArgs(network: GuestSpec['network']): string[] {
  if (!network) return [];
  const forwards = network.forwards.map((f) => `,hostfwd=tcp:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('');
  return ['-netdev', `user,id=n0,net=10.0.0.0/8,host=${HOST_FROM_GUEST},dns=10.0.2.3,dhcpstart=${GUEST_ADDRESS}${forwards}`, '-device', 'virtio-net-pci,netdev=n0'];
}

export type GuestStatus = 'done' | 'timeout' | 'exited';

export interface GuestOutcome {
  status: GuestStatus;
  records: GuestRecord[];
  problems: ProtocolProblem[];
  exitCode: number | undefined;
  signal: string | undefined;
  wallMs: number;
  /** The last console lines, for evidence when the guest never finished. */
  consoleTail: string;
  command: string[];
}

/** The QEMU binary and arguments for a guest; pure, so tests and benchmarks can show it. */
export function qemuCommand(spec: GuestSpec): { binary: string; args: string[] } {
  const memory = String(spec.memoryMiB ?? 1024);
  const smp = String(spec.smp ?? 1);
  const common = ['-m', memory, '-smp', smp, '-kernel', spec.kernel, '-initrd', spec.initrd,
    '-nodefaults', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', ...networkArgs(spec.network)];
  // printk.time=1: the protocol parser recognises spliced kernel messages by their timestamp.
  const base = ['panic=-1', 'printk.time=1', 'quiet'];
  if (spec.arch === 'x86_64') {
    const cpu = spec.accel === 'kvm' ? 'host' : 'max';
    return {
      binary: 'qemu-system-x86_64',
      args: ['-accel', spec.accel, '-cpu', cpu, '-M', 'q35', ...common,
        '-append', ['console=ttyS0', ...base, ...spec.append].join(' ')],
    };
  }
  // pauth-impdef: QEMU's QARMA5 pointer-auth emulation makes arm64 TCG boots 2-3x slower.
  return {
    binary: 'qemu-system-aarch64',
    args: ['-M', 'virt', '-cpu', 'max,pauth-impdef=on', '-accel', 'tcg', ...common,
      '-append', ['console=ttyAMA0', ...base, ...spec.append].join(' ')],
  };
}

/**
 * Every QEMU process group alive in this process. QEMU runs detached (its own group,
 * so a timeout can kill what it spawned), which also means a terminal's Ctrl-C does
 * not reach it: whatever way bpfgate ends, the groups still listed here are killed.
 */
const LIVE_GROUPS = new Set<number>();
process.once('exit', () => {
  for (const pgid of LIVE_GROUPS) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** The QEMU process groups still running (for tests and for the interrupt handler). */
export function liveGuests(): number[] {
  return [...LIVE_GROUPS];
}

/** A booted guest. Dispose it to make sure its process group is gone. */
export class RunningGuest implements AsyncDisposable {
  readonly outcome: Promise<GuestOutcome>;
  private readonly child: ResultPromise;
  private ended = false;
  private tail = '';

  constructor(spec: GuestSpec, onRecord: (r: GuestRecord) => void, log: WriteStream) {
    const { binary, args } = qemuCommand(spec);
    const started = Date.now();
    const parser = new ConsoleParser();
    const records: GuestRecord[] = [];
    let tail = '';
    let status: GuestStatus = 'exited';

    this.child = execa(binary, args, {
      detached: true, // own process group: a timeout kills QEMU and anything it spawned
      stdin: 'ignore',
      buffer: false,
      reject: false,
      stripFinalNewline: false,
    });

    const finish = (why: GuestStatus, graceMs: number) => {
      if (status !== 'exited' || this.ended) return;
      status = why;
      // A guest that said "done" powers itself off; give it a moment, then make sure.
      setTimeout(() => this.kill(), graceMs).unref();
    };

    const onData = (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      log.write(chunk);
      tail = (tail + text).slice(-4000);
      this.tail = tail;
      for (const record of parser.push(text)) {
        records.push(record);
        onRecord(record);
        if (record.type === 'done') finish('done', 3000);
      }
      if (spec.doneMarker && tail.includes(spec.doneMarker)) finish('done', 3000);
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    const pgid = this.child.pid;
    if (pgid !== undefined) LIVE_GROUPS.add(pgid);

    const timer = setTimeout(() => finish('timeout', 0), spec.timeoutMs);
    const onAbort = () => this.kill();
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    if (spec.signal?.aborted) this.kill();

    this.outcome = this.child.then(
      (result) => {
        clearTimeout(timer);
        spec.signal?.removeEventListener('abort', onAbort);
        if (pgid !== undefined) LIVE_GROUPS.delete(pgid);
        this.ended = true;
        if (result.failed && result.exitCode === undefined && /ENOENT/.test(result.message ?? "")) {
          throw new InfraError('infra-tool-missing', `${binary} is not installed (apt-get install ${binary === 'qemu-system-x86_64' ? 'qemu-system-x86' : 'qemu-system-arm'})`);
        }
        return new Promise<GuestOutcome>((resolve) => {
          log.end(() =>
            resolve({
              status,
              records,
              problems: parser.problems,
              exitCode: result.exitCode,
              signal: result.signal,
              wallMs: Date.now() - started,
              consoleTail: tail.replace(/\r/g, ''),
              command: [binary, ...args],
            }),
          );
        });
      },
    );
  }

  /** The last console lines so far (a guest that runs until it is stopped: a cluster node). */
  consoleTail(lines = 25): string {
    return this.tail.replace(/\r/g, '').split('\n').filter((l) => l.trim()).slice(-lines).join('\n');
  }

  /** Kill the whole process group; safe to call twice. */
  kill(): void {
    if (this.ended || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.outcome.catch(() => undefined);
  }
}

/** Boot a guest and wait for its outcome; the process group never outlives the call. */
export async function bootGuest(spec: GuestSpec, onRecord: (r: GuestRecord) => void = () => {}): Promise<GuestOutcome> {
  await mkdir(dirname(spec.serialLog), { recursive: true });
  const log = createWriteStream(spec.serialLog);
  await using guest = new RunningGuest(spec, onRecord, log);
  return await guest.outcome;
}
