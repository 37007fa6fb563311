/**
 * Ctrl-C and SIGTERM during a run. The first signal aborts the run: no new cell or
 * boot starts, every guest is killed, scratch directories are removed, and what
 * finished stays on disk for `--resume`; the command then exits 130 (SIGINT) or 143
 * (SIGTERM), as shells expect. A second signal exits at once (guests are still
 * killed: runners/qemu/vm.ts kills every QEMU group it started when the process exits).
 */

export interface Interrupt extends Disposable {
  readonly signal: AbortSignal;
  /** The signal that stopped the run, if one did. */
  readonly received: NodeJS.Signals | undefined;
  /** 130 after SIGINT, 143 after SIGTERM. */
  readonly exitCode: number;
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export function interruptOnSignals(onFirst: (signal: NodeJS.Signals) => void = () => {}): Interrupt {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (received) process.exit(CODES[signal] ?? 1);
    received = signal;
    onFirst(signal);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    get exitCode() {
      return received ? (CODES[received] ?? 1) : 0;
    },
    [Symbol.dispose]() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
