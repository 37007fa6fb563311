import { describe, expect, it } from 'vitest';
import { BpfgateError } from '../../core/errors.js';
import { CLUSTER_MATRIX_FILE } from '../../matrix/assets.js';
import type { Arch, Cell } from '../../matrix/cell.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadMatrix } from '../../matrix/load.js';
import { CELL_COST, formatShard, parseShard, shardCells, splitUnits, workUnits, type WorkUnit } from '../../matrix/shard.js';

/** A matrix of `x86` x86_64 cells and `arm` arm64 cells, as the loader would plan them. */
function cells(x86: number, arm: number): Cell[] {
  const make = (arch: Arch, i: number): Cell => ({
    id: `${arch}-k${i}`, arch, pageSize: 4, kernelLabel: `k${i}`, platform: 'qemu', variants: [], bootArgs: [],
    kernel: { kind: 'debian', suite: 'trixie', package: 'linux-image-amd64', debArch: arch === 'x86_64' ? 'amd64' : 'arm64' },
  });
  return [...Array.from({ length: x86 }, (_, i) => make('x86_64', i)), ...Array.from({ length: arm }, (_, i) => make('arm64', i))];
}

/** Deterministic shuffle (a small LCG), so the test shows order does not matter. */
function shuffled<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const ids = (shards: WorkUnit[][]) => shards.map((s) => s.flatMap((u) => u.cells).sort());
const load = (shard: WorkUnit[]) => shard.reduce((n, u) => n + u.cost, 0);

describe('--shard I/N', () => {
  it('reads I/N with 1 <= I <= N', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(parseShard(' 1 / 1 ')).toEqual({ index: 1, count: 1 });
    expect(formatShard(parseShard('12/40'))).toBe('12/40');
  });

  it.each([
    ['0/3', /1 <= I <= N/],
    ['4/3', /shard 4 of 3 does not exist/],
    ['1/0', /1 <= I <= N/],
    ['3', /expected I\/N/],
    ['a/b', /expected I\/N/],
    ['-1/3', /expected I\/N/],
    ['1.5/3', /expected I\/N/],
    ['', /expected I\/N/],
  ])('refuses %j with a usage error (exit 2) that says what was expected', (text, message) => {
    const err = (() => {
      try {
        parseShard(text);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(BpfgateError);
    expect((err as BpfgateError).exit).toBe(2);
    expect((err as BpfgateError).message).toMatch(message);
  });
});

describe('splitting a run into shards', () => {
  it('puts every cell of the default matrix in exactly one shard, for every N from 1 to 12', async () => {
    const { cells: all } = await loadDefaultMatrix();
    for (let n = 1; n <= 12; n++) {
      const shards = Array.from({ length: n }, (_, i) => shardCells(all, { index: i + 1, count: n }).map((c) => c.id));
      const flat = shards.flat();
      expect(flat.length, `N=${n}`).toBe(all.length);
      expect(new Set(flat).size, `N=${n}`).toBe(all.length);
      expect([...flat].sort()).toEqual(all.map((c) => c.id).sort());
      // Each shard keeps the matrix's order.
      for (const shard of shards) expect(shard).toEqual(all.map((c) => c.id).filter((id) => shard.includes(id)));
      // More shards than cells leaves the extra shards empty, never a cell twice.
      expect(shards.filter((s) => s.length === 0).length).toBe(Math.max(0, n - all.length));
    }
  });

  it('is the same split whatever order the cells come in', async () => {
    const { cells: all } = await loadDefaultMatrix();
    for (const n of [2, 3, 4, 7]) {
      const expected = ids(splitUnits(workUnits(all), n));
      for (const seed of [1, 2, 3, 42]) expect(ids(splitUnits(workUnits(shuffled(all, seed)), n)), `N=${n} seed ${seed}`).toEqual(expected);
    }
  });

  it('splits the default matrix into 3 shards of 4, 3 and 3 cells with two arm64 cells each', async () => {
    const { cells: all } = await loadDefaultMatrix();
    const shards = [1, 2, 3].map((i) => shardCells(all, { index: i, count: 3 }));
    expect(shards.map((s) => s.length)).toEqual([4, 3, 3]);
    expect(shards.map((s) => s.filter((c) => c.arch === 'arm64').length)).toEqual([2, 2, 2]);
    expect(shards.map((s) => s.reduce((n, c) => n + CELL_COST[c.arch], 0))).toEqual([6, 5, 5]);
  });

  it('balances the estimated cost: no shard exceeds another by more than the costliest unit', () => {
    for (const [x86, arm] of [[4, 6], [10, 0], [0, 9], [17, 23], [3, 40], [50, 5]] as const) {
      const units = workUnits(cells(x86, arm));
      const maxUnit = Math.max(...units.map((u) => u.cost));
      for (let n = 1; n <= 16; n++) {
        const shards = splitUnits(units, n);
        const loads = shards.map(load);
        expect(Math.max(...loads) - Math.min(...loads), `${x86} x86_64 + ${arm} arm64 over ${n}`).toBeLessThanOrEqual(maxUnit);
        expect(shards.flat().length).toBe(units.length);
        expect(new Set(shards.flat().map((u) => u.key)).size).toBe(units.length);
      }
    }
  });

  it('spreads the arm64 cells (the slow ones under TCG) evenly over the shards', () => {
    const all = cells(7, 11);
    for (let n = 2; n <= 6; n++) {
      const perShard = splitUnits(workUnits(all), n).map((s) => s.filter((u) => u.key.startsWith('arm64')).length);
      expect(Math.max(...perShard) - Math.min(...perShard), `N=${n}: ${perShard.join(',')}`).toBeLessThanOrEqual(1);
    }
  });

  it('keeps the nodes of an assembled cluster together: they start as one cluster', async () => {
    const { cells: nodes } = await loadMatrix(CLUSTER_MATRIX_FILE);
    expect(nodes.length).toBeGreaterThan(1);
    const units = workUnits([...cells(2, 2), ...nodes]);
    const cluster = units.filter((u) => u.key.startsWith('qemu-cluster:'));
    expect(cluster).toHaveLength(1);
    expect(cluster[0]!.cells).toEqual(nodes.map((c) => c.id));
    expect(cluster[0]!.cost).toBe(nodes.reduce((n, c) => n + CELL_COST[c.arch], 0));
    const holding = [1, 2, 3].map((i) => shardCells([...cells(2, 2), ...nodes], { index: i, count: 3 })).filter((s) => s.some((c) => c.platform === 'qemu-cluster'));
    expect(holding).toHaveLength(1);
    expect(holding[0]!.filter((c) => c.platform === 'qemu-cluster').map((c) => c.id)).toEqual(nodes.map((c) => c.id));
  });
});
