/**
 * The tetragon lane: a Tetragon release started beside the policies, on a QEMU cell
 * today (the cluster platforms next). It reads the agent's load state of each policy,
 * runs the ATT&CK triggers, and asserts on the exported events tied to each trigger by
 * its marker. An agent that starts and loads nothing (the 16K ring-buffer case) fails
 * every policy with the agent's own error as evidence. Planning (plan.ts) and judging
 * (judge.ts) are platform-free; qemu.ts is the guest adapter.
 */
import type { LiveSuite, StaticSuite } from '../../core/suite.js';
import { subjectOf } from '../../core/suite.js';
import type { Trigger } from '../triggers/model.js';
import { bundleFor, type TetragonBundle } from './bundle.js';
import { LOAD_BUDGET_MS, type TetragonOptions } from './plan.js';
import { TetragonQemuSession } from './qemu.js';


export function tetragonSuite(triggers: Trigger[], bundles: TetragonBundle[], options: TetragonOptions = { agentArgs: [] }): LiveSuite {
  return {
    kind: 'live',
    name: 'tetragon',
    lane: 'tetragon-vm',
    // Agent start and policy loads are slow under TCG; then every trigger once.
    budgetMs: LOAD_BUDGET_MS + 60_000 + triggers.length * 2_500,
    sessions: { qemu: (ctx) => new TetragonQemuSession(ctx, triggers, bundles, options) },
    agentOn: (cell) => {
      const bundle = bundleFor(bundles, cell.arch);
      return bundle ? { name: 'tetragon', version: bundle.version } : undefined;
    },
  };
}

/** With no bundle at all the lane does not boot anything: each policy is a skip that says how to run it. */
export const tetragonNotConfigured: StaticSuite = {
  kind: 'static',
  name: 'tetragon',
  lane: 'tetragon-vm',
  run: (ctx) =>
    ctx.policies.map((p) => ({
      subject: subjectOf(ctx, p),
      check: 'tetragon:load',
      status: 'skip',
      reason: null,
      evidence: { why: 'no Tetragon bundle given: pass --tetragon with a release tarball (tetragon-vX.Y.Z-amd64.tar.gz / -arm64), its directory, or a URL' },
      durationMs: 0,
      source: p.source,
    })),
};
