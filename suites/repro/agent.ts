/**
 * The agent's own answer beside a kernel bug: `bpfgate repro tailcall-attach-type
 * --tetragon BUNDLE` also starts the Tetragon release on each cell whose arch has a bundle
 * and adds the smallest kprobe policy, with no agent flags, as users run it. Where the
 * kernel refuses kprobe.multi and kprobe programs in one tail-call map, Tetragon v1.5.0's
 * multi-kprobe sensor is refused with it; where kprobe.multi is absent the agent attaches
 * single kprobes and loads the policy.
 */
import type { CheckResult } from '../../core/check.js';
import { assetPath } from '../../core/assets.js';
import type { LiveSuite } from '../../core/suite.js';
import { readPolicies, type PolicyDocument } from '../../policy/index.js';
import type { GuestOutcome } from '../../runners/qemu/vm.js';
import { bundleFor, type TetragonBundle } from '../tetragon/bundle.js';
import { tetragonSuite } from '../tetragon/index.js';

/** The bugs whose reproduction the agent can stand beside. */
export const AGENT_BUGS = ['tailcall-attach-type'] as const;

export async function agentPolicyDocuments(): Promise<PolicyDocument[]> {
  return (await readPolicies([assetPath('suites', 'repro', 'policies', 'tailcall-kprobe.yaml')])).documents;
}

/** The tetragon suite with no triggers, on the cells whose arch has a bundle (the others boot without it). */
export function agentBesideSuite(bundles: TetragonBundle[]): LiveSuite {
  const suite = tetragonSuite([], bundles, { agentArgs: [], boots: 1 });
  const make = suite.sessions.qemu!;
  const idle = { guestFiles: () => [], planned: () => [], onRecord: () => [], finish: (_: GuestOutcome) => [] };
  return { ...suite, sessions: { qemu: (ctx) => (bundleFor(bundles, ctx.cell.arch) ? make(ctx) : idle) } };
}

/** One line per cell: what the agent answered for the kprobe policy. */
export function agentLines(results: readonly CheckResult[]): string[] {
  return results
    .filter((r) => r.check === 'tetragon:load')
    .map((r) => {
      const e = r.evidence;
      const words = String(e.tetraAdd ?? e.error ?? e.state ?? '').replace(/^Error: failed to add tracing policy: /, '');
      const how = e.kprobeMulti === true ? 'kprobe.multi' : e.kprobeMulti === false ? 'single kprobes' : 'kprobes';
      return `  agent ${String(e.agent ?? '')} on ${r.cell} (${how}, no flags): ${r.status === 'pass' ? 'loaded the kprobe policy' : `${r.reason}: ${words.slice(0, 400)}`}`;
    });
}
