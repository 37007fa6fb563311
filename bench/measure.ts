/**
 * Shared by the benchmarks: wall time, and the peak resident memory of the
 * QEMU guests and of bpfgate itself, sampled while a phase runs.
 */
import { readFile, readdir } from 'node:fs/promises';

export interface PhaseStats {
  wallMs: number;
  /** Peak summed RSS of all QEMU processes alive at one sample, in MiB. */
  qemuPeakMiB: number;
  /** Peak RSS of this Node process, in MiB. */
  selfPeakMiB: number;
}

async function qemuRssKiB(): Promise<number> {
  let total = 0;
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      if (!/^Name:\s+qemu-system-/m.test(status)) continue;
      total += Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
    } catch {
      // the process ended between readdir and read
    }
  }
  return total;
}

/** Run a phase while sampling memory every 250 ms. */
export async function measure<T>(phase: () => Promise<T>): Promise<{ result: T; stats: PhaseStats }> {
  let qemuPeak = 0;
  let selfPeak = process.memoryUsage().rss;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      qemuPeak = Math.max(qemuPeak, await qemuRssKiB());
      selfPeak = Math.max(selfPeak, process.memoryUsage().rss);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const started = performance.now();
  try {
    const result = await phase();
    return {
      result,
      stats: { wallMs: performance.now() - started, qemuPeakMiB: qemuPeak / 1024, selfPeakMiB: selfPeak / 1048576 },
    };
  } finally {
    sampling = false;
    await sampler;
  }
}

export const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** Plain aligned columns for a terminal or a CI log. */
export function table(rows: (string | number)[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ')).join('\n');
}
