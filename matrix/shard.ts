/**
 * `--shard I/N`: a run's work split over N machines (a CI job matrix), each running
 * one shard into its own output directory; `bpfgate merge` joins them again.
 *
 * The unit of work is a cell: a QEMU cell boots all its suites in its own guests and
 * its checks are judged within the cell (the tetragon lane judges triggers on the
 * events of all of a cell's boots together, and cross checks compare two suites of
 * the cell), so a cell's boots stay on one machine. The cells of a cluster platform
 * are nodes of one cluster and start together: they are one unit.
 *
 * Invariants (pure, no host): the same cells give the same split whatever their
 * order; every unit is in exactly one shard; shards are balanced by estimated cost
 * (the costliest units first, each to the least loaded shard), so arm64 cells, the
 * slow ones, are dealt out evenly before the x86_64 ones fill the gaps.
 */
import { BpfgateError } from '../core/errors.js';
import type { Arch, Cell, Platform } from './cell.js';

/** One shard of N, `index` counted from 1 as the user writes it. */
export interface Shard {
  index: number;
  count: number;
}

/** A piece of work that one shard runs whole. */
export interface WorkUnit {
  /** Stable sort key: the cell id, or the cluster platform's name and its cells. */
  key: string;
  /** Its cells, in the order given. */
  cells: string[];
  /** Estimated cost, relative (an x86_64 cell is 1). */
  cost: number;
}

/**
 * Relative cost of a cell by arch. On CI runners x86_64 guests can use KVM and arm64
 * guests always run under TCG; under TCG the agent's verifier costs twice as much on
 * arm64 (suites/tetragon/boots.ts: 20 s against 10 s per BPF program set).
 */
export const CELL_COST: Record<Arch, number> = { x86_64: 1, arm64: 2 };

/** Platforms whose cells are the nodes of one cluster, started as one. */
const CLUSTER_PLATFORMS: ReadonlySet<Platform> = new Set(['qemu-cluster', 'kind', 'k3s', 'kubeconfig']);

const SHARD_FORM = /^\s*(\d+)\s*\/\s*(\d+)\s*$/;

/** Parse `I/N` (1 <= I <= N); a usage error (exit 2) that says what was expected otherwise. */
export function parseShard(text: string): Shard {
  const m = SHARD_FORM.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count)) {
    throw new BpfgateError('usage', `--shard ${JSON.stringify(text)}: expected I/N, this machine's shard I of N (e.g. --shard 2/3)`);
  }
  if (count < 1 || index < 1 || index > count) {
    throw new BpfgateError('usage', `--shard ${text.trim()}: expected 1 <= I <= N (shard ${index} of ${count} does not exist)`);
  }
  return { index, count };
}

export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/** The run's work units: one per cell, one per cluster platform for all its cells. */
export function workUnits(cells: readonly Cell[]): WorkUnit[] {
  const units: WorkUnit[] = [];
  const clusters = new Map<Platform, WorkUnit>();
  for (const cell of cells) {
    const cost = CELL_COST[cell.arch];
    if (!CLUSTER_PLATFORMS.has(cell.platform)) {
      units.push({ key: cell.id, cells: [cell.id], cost });
      continue;
    }
    const unit = clusters.get(cell.platform);
    if (unit) {
      unit.cells.push(cell.id);
      unit.cost += cost;
    } else {
      const made = { key: '', cells: [cell.id], cost };
      clusters.set(cell.platform, made);
      units.push(made);
    }
  }
  for (const [platform, unit] of clusters) unit.key = `${platform}:${[...unit.cells].sort().join(',')}`;
  return units;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Deal the units into `count` shards: costliest first (ties by key), each to the shard
 * with the least cost so far (ties to the lowest). Shard i of the result is shard i+1.
 */
export function splitUnits(units: readonly WorkUnit[], count: number): WorkUnit[][] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`shard count ${count}: expected a positive whole number`);
  const shards: WorkUnit[][] = Array.from({ length: count }, () => []);
  const load = new Array<number>(count).fill(0);
  const order = [...units].sort((a, b) => b.cost - a.cost || byText(a.key, b.key));
  for (const unit of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    shards[best]!.push(unit);
    load[best]! += unit.cost;
  }
  return shards;
}

/** The cells of one shard, in the order of `cells` (the matrix's). */
export function shardCells(cells: readonly Cell[], shard: Shard): Cell[] {
  const mine = new Set(splitUnits(workUnits(cells), shard.count)[shard.index - 1]!.flatMap((u) => u.cells));
  return cells.filter((c) => mine.has(c.id));
}
