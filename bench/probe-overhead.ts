/**
 * Benchmark: the probe suite on the default matrix against raw QEMU boots of the
 * same kernels and initramfs, with an init that only powers off, in one run and
 * with the same parallelism. Reports the ratio end to end, the share that is the
 * guest's own probe work, and the host-side harness overhead per cell.
 *
 *   npm run build && node dist/bench/probe-overhead.js [--cells GLOB] [--jobs N] [--json FILE]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { EventBus } from '../core/events.js';
import { ResultStore } from '../core/results-store.js';
import { planCells } from '../cli/commands/run.js';
import { RAW_DONE_MARKER } from '../runners/qemu/accel.js';
import { bootableCell, kernelFacts } from '../runners/qemu/platform.js';
import { bootGuest } from '../runners/qemu/vm.js';
import { defaultJobs, runMatrix } from '../runners/orchestrator.js';
import { probeSuite } from '../suites/probe/index.js';
import { measure, seconds, table } from './measure.js';

const { values } = parseArgs({ options: { cells: { type: 'string' }, jobs: { type: 'string' }, json: { type: 'string' } } });
const jobs = values.jobs ? Number(values.jobs) : defaultJobs();
const cells = await planCells(undefined, values.cells);
const scratch = await mkdtemp(join(tmpdir(), 'bpfgate-bench-'));

// Warm the cache first: downloads are not what this benchmark measures.
const prepared = new Map(await Promise.all(cells.map(async (c) => [c.id, await bootableCell(c, (await kernelFacts(c)).kernel)] as const)));
const accel = new Map(cells.map((c) => [c.id, prepared.get(c.id)!.accel.accel] as const));

// Raw boots: same kernel, same base initramfs, same command line, rdinit=/raw-init.
const rawWall = new Map<string, number>();
const raw = await measure(async () => {
  const limit = pLimit(jobs);
  await Promise.all(cells.map((c) => limit(async () => {
    const p = prepared.get(c.id)!;
    const o = await bootGuest({
      arch: c.arch, kernel: p.kernelImage, initrd: p.baseInitrd, append: [...c.bootArgs, 'rdinit=/raw-init'],
      accel: accel.get(c.id)!, timeoutMs: 120_000, serialLog: join(scratch, 'raw', `${c.id}.log`), doneMarker: RAW_DONE_MARKER,
    });
    if (o.status !== 'done') throw new Error(`raw boot of ${c.id} did not finish: ${o.status}`);
    rawWall.set(c.id, o.wallMs);
  })));
});

// The probe suite, through the same orchestrator as `bpfgate run --suite probe`.
const out = join(scratch, 'probe');
// Per cell: from its own boot's start to its end (cell-start is its first boot taking a slot),
// the guest's own time (QEMU alive), and the host's own time around it (overlay, records).
const cellWall = new Map<string, number>();
const guestWall = new Map<string, number>();
const hostWall = new Map<string, number>();
const probe = await measure(async () => {
  using store = ResultStore.open(out);
  const bus = new EventBus().on(store.listener).on((e) => {
    if (e.type === 'cell-end') cellWall.set(e.cell, e.durationMs);
    if (e.type === 'check' && e.result.check === 'boot') {
      guestWall.set(e.result.cell, Number(e.result.evidence.wallMs));
      hostWall.set(e.result.cell, Number(e.result.evidence.hostMs));
    }
  });
  return await runMatrix({ cells, suites: [probeSuite], documents: [], outDir: out, store, bus, jobs });
});
const errors = probe.result.results.filter((r) => r.status === 'error');
if (errors.length) throw new Error(`the probe run had ${errors.length} errors, e.g. ${JSON.stringify(errors[0])}`);

const rows: (string | number)[][] = [['cell', 'raw boot s', 'probe cell s', 'ratio', 'guest s', 'host s']];
for (const c of cells) {
  const r = rawWall.get(c.id)!;
  const p = cellWall.get(c.id)!;
  rows.push([c.id, seconds(r), seconds(p), (p / r).toFixed(2), seconds(guestWall.get(c.id)!), seconds(hostWall.get(c.id)!)]);
}
const ratio = probe.stats.wallMs / raw.stats.wallMs;
const hostOverheadMs = [...hostWall.values()].reduce((s, ms) => s + ms, 0);
const guestMs = [...guestWall.values()].reduce((s, ms) => s + ms, 0);
process.stdout.write(`${table(rows)}\n\n`);
process.stdout.write(`total (${cells.length} cells, ${jobs} at a time): raw boots ${seconds(raw.stats.wallMs)} s, probe suite ${seconds(probe.stats.wallMs)} s, ratio ${ratio.toFixed(2)}x\n`);
process.stdout.write(`host-side harness overhead (overlay before each boot, records after it): ${seconds(hostOverheadMs)} s over ${seconds(guestMs)} s of guest time (${((hostOverheadMs / guestMs) * 100).toFixed(1)}%)\n`);
process.stdout.write(`peak memory: QEMU ${raw.stats.qemuPeakMiB.toFixed(0)} MiB raw / ${probe.stats.qemuPeakMiB.toFixed(0)} MiB probe; bpfgate ${probe.stats.selfPeakMiB.toFixed(0)} MiB\n`);
if (values.json) {
  await writeFile(values.json, JSON.stringify({ jobs, cells: cells.map((c) => c.id), raw: raw.stats, probe: probe.stats, ratio, rawWall: Object.fromEntries(rawWall), cellWall: Object.fromEntries(cellWall), guestWall: Object.fromEntries(guestWall), hostWall: Object.fromEntries(hostWall) }, null, 2));
}
await rm(scratch, { recursive: true, force: true });
