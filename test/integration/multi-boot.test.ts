/**
 * A suite that asks for more than one boot of a cell: each boot gets its own guest
 * files and serial log, the boots go through the run's job limit, and the suite
 * hears every boot's records before it completes the cell.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckDraft, CheckStatus } from '../../core/check.js';
import type { PlatformEnv } from '../../core/platform.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { BOOT_SUITE } from '../../runners/qemu/cell-runner.js';
import { QemuPlatform } from '../../runners/qemu/platform.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { QemuSession } from '../../runners/qemu/session.js';
import { tempOut } from '../support/cli.js';

const BOOTS = 3;

/** Each boot reports its index and the files it was given; the cell completes with what all boots said. */
function spreadSession(heard: Map<number, string>): QemuSession {
  return {
    boots: () => BOOTS,
    guestFiles: (boot) => [
      { path: `/bpfgate/spread/mine-${boot}`, content: `${boot}\n` },
      { path: '/bpfgate/steps/40-spread.sh', content: 'emit spread "files=$(ls /bpfgate/spread | tr \'\\n\' ,)" "$(cat /bpfgate/spread/mine-*)"\n' },
    ],
    planned: () => [{ subject: 'cell', check: 'all-boots' }],
    onRecord: (record: GuestRecord, boot: number): CheckDraft[] => {
      if (record.type === 'spread') heard.set(boot, `${record.header.files}|${record.body.trim()}`);
      return [];
    },
    finish: () => [],
    complete: (): CheckDraft[] => {
      const status: CheckStatus = heard.size === BOOTS ? 'pass' : 'fail';
      return [{ subject: 'cell', check: 'all-boots', status, reason: null, evidence: { heard: Object.fromEntries(heard) }, durationMs: 0 }];
    },
  };
}

describe('a suite spread over several boots of one cell', () => {
  const heard = new Map<number, string>();
  const records: { suite: string; draft: CheckDraft }[] = [];
  let cellDir: string;
  let running = 0;
  let mostAtOnce = 0;

  beforeAll(async () => {
    const cell = (await loadDefaultMatrix()).cells.find((c) => c.id === 'x86_64-6.12')!;
    const dir = tempOut('multi-boot');
    cellDir = join(dir, 'cells', cell.id);
    const limit = pLimit(2);
    const env: PlatformEnv = { outDir: dir, signal: new AbortController().signal, slot: (w) => w(), phase: () => {}, log: () => {}, timeoutMs: 90_000 };
    // The platform's own lifecycle: describe, start, run, dispose.
    const platform = new QemuPlatform();
    const described = { cell, ...(await platform.describe(cell, { booting: true }, env)) };
    await using started = await platform.start([described], env);
    await started.run(described, [{ suite: 'spread', lane: 'kernel', budgetMs: 30_000, session: spreadSession(heard) }], {
      done: () => false,
      record: (suite, _lane, draft) => records.push({ suite, draft }),
      slot: (boot) =>
        limit(async () => {
          mostAtOnce = Math.max(mostAtOnce, ++running);
          try {
            return await boot();
          } finally {
            running--;
          }
        }),
    });
  }, 300_000);

  it('gives each boot only its own files and hears every boot', () => {
    expect([...heard.keys()].sort()).toEqual([0, 1, 2]);
    for (const [boot, said] of heard) expect(said).toBe(`mine-${boot},|${boot}`);
    expect(records.find((r) => r.draft.check === 'all-boots')?.draft.status).toBe('pass');
  });

  it('reports each boot on its own, with its own serial log', () => {
    const boots = records.filter((r) => r.suite === BOOT_SUITE && r.draft.check === 'boot').map((r) => r.draft);
    expect(boots.map((b) => b.subject).sort()).toEqual(['kernel', 'kernel (boot 2 of 3)', 'kernel (boot 3 of 3)']);
    expect(boots.every((b) => b.status === 'pass')).toBe(true);
    for (const log of ['serial.log', 'serial-2.log', 'serial-3.log']) expect(existsSync(join(cellDir, log))).toBe(true);
  });

  it('runs the boots through the job limit, never more at once than it allows', () => {
    expect(mostAtOnce).toBe(2);
  });
});
