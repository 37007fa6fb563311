/**
 * The tetragon-vm lane: the same guest as the kernel lane plus a Tetragon release
 * bundle, started with every valid policy. It reads the agent's load state of
 * each policy, runs the ATT&CK triggers, and asserts on the exported events tied
 * to each trigger by its marker. An agent that starts and loads nothing (the 16K
 * ring-buffer case) fails every policy with the agent's own error as evidence.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CheckResult } from '../../core/check.js';
import { assetPath } from '../../core/assets.js';
import type { Cell } from '../../matrix/cell.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { GuestOutcome } from '../../runners/qemu/vm.js';
import { bundleFor, type TetragonBundle } from '../../runners/tetragon/bundle.js';
import type { Policy } from '../../policy/model.js';
import { hookSpec } from '../../policy/spec.js';
import type { CellContext, CheckDraft, GuestFile, PlannedCheck, StaticSuite, VmSuite, VmSuiteSession } from '../suite.js';
import type { ExpectedEvent, Trigger } from '../triggers/model.js';
import { triggerGuestFiles } from '../triggers/guest-files.js';
import { kprobeSymbol } from '../policies/targets.js';
import { readExport, summarizeEvent, type TetragonEvent } from './events.js';
import { agentErrors, loadVerdict, parsePolicyList, type PolicyLoadState } from './load-state.js';
import { findMatch, functionNameMatches, markerOf } from './match.js';

/** Guest seconds, from the agent's start, for loading policies; the verifier is slow under TCG. */
const LOAD_BUDGET_MS = 200_000;

/** BPF objects built for kernels older than the oldest the catalogue boots stay out of the guest. */
const OLD_KERNEL_OBJECT = /_v(310|53|511)\.o$/;

function bundleFiles(bundle: TetragonBundle): GuestFile[] {
  const out: GuestFile[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const info = statSync(path);
      if (info.isDirectory()) walk(path);
      else if (!OLD_KERNEL_OBJECT.test(name)) out.push({ path: `/${relative(bundle.root, path)}`, from: path, mode: info.mode & 0o777 });
    }
  };
  walk(join(bundle.root, 'usr'));
  return out;
}

/**
 * Hooks of enabled policies; with `unfilteredOnly`, only those that export every hit (no
 * selectors that could filter a trigger out, so they owe an event).
 */
function enabledHooks(policies: Policy[], enabled: Set<string>, arch: Cell['arch'], unfilteredOnly: boolean): Set<string> {
  const out = new Set<string>();
  for (const p of policies.filter((x) => enabled.has(x.name))) {
    for (const h of p.hooks) {
      const selectors = hookSpec(p, h)?.selectors;
      if (unfilteredOnly && Array.isArray(selectors) && selectors.length > 0) continue;
      const kind = h.kind === 'rawtp' ? 'tracepoint' : h.kind;
      out.add(`${kind}:${h.kind === 'kprobe' ? kprobeSymbol(h, arch) : h.name}`);
    }
  }
  return out;
}

/** Does an enabled, unfiltered hook watch what this expectation is about? process_exec needs none. */
function watched(expected: ExpectedEvent, hooks: Set<string>): boolean {
  if (expected.type === 'process_exec') return true;
  if (expected.type === 'process_tracepoint') return hooks.has(`tracepoint:${expected.subsys}/${expected.event}`);
  const kind = expected.type === 'process_lsm' ? 'lsm' : 'kprobe';
  return [...hooks].some((h) => h.startsWith(`${kind}:`) && functionNameMatches(expected.function_name, h.slice(kind.length + 1)));
}

class TetragonSession implements VmSuiteSession {
  private readonly bundle: TetragonBundle | undefined;
  private readonly policies;
  private states: PolicyLoadState[] | undefined;
  private events: TetragonEvent[] = [];
  private agentLog = '';
  private ready = false;
  private readonly started = Date.now();

  constructor(
    private readonly ctx: CellContext,
    private readonly triggers: Trigger[],
    private readonly bundles: TetragonBundle[],
    private readonly agentArgs: string[],
  ) {
    this.bundle = bundleFor(bundles, ctx.cell.arch);
    this.policies = ctx.policies.filter((p) => (ctx.policyProblems.get(p) ?? []).length === 0);
  }

  private subject(p: (typeof this.policies)[number]): string {
    return this.ctx.subjects.get(p) ?? p.name;
  }

  guestFiles(): GuestFile[] {
    if (!this.bundle) return [];
    const files: GuestFile[] = [
      ...bundleFiles(this.bundle),
      { path: '/bpfgate/steps/30-tetragon.sh', content: readFileSync(assetPath('suites', 'tetragon', 'guest', 'tetragon.sh')) },
      { path: '/bpfgate/tetragon/markers', content: this.triggers.map((t) => t.marker).join('\n') + '\n' },
      { path: '/bpfgate/tetragon/args', content: this.agentArgs.join(' ') + '\n' },
      { path: '/bpfgate/tetragon/env', content: `BPFGATE_TETRAGON_LOAD_BUDGET=${Math.round(LOAD_BUDGET_MS / 1000)}\n` },
      ...this.policies.map((p, i) => ({ path: `/bpfgate/tetragon/policies/${String(i).padStart(3, '0')}.yaml`, content: JSON.stringify(p.doc) })),
    ];
    // The policies suite may share the boot: its triggers are numbered from 0, these from 500.
    files.push(...triggerGuestFiles(this.triggers, 500, '/bpfgate/tetragon/triggers'));
    return files;
  }

  memoryMiB(): number {
    return this.bundle ? 4096 : 0;
  }

  planned(): PlannedCheck[] {
    if (!this.bundle) return this.policies.map((p) => ({ subject: this.subject(p), check: 'tetragon:load', source: p.source }));
    return [
      ...this.policies.map((p) => ({ subject: this.subject(p), check: 'tetragon:load', source: p.source })),
      ...this.triggers.map((t) => ({ subject: t.id, check: 'tetragon:events', source: t.source })),
    ];
  }

  onRecord(record: GuestRecord): CheckDraft[] {
    if (record.type === 'tp-add') return this.addCheck(record);
    if (record.type === 'tp-list') return this.loadChecks(record);
    if (record.type === 'tetragon-events') {
      this.events = readExport(record.body, `${this.ctx.cell.id}:tetragon.log`, { tolerant: true }).events;
    }
    if (record.type === 'agent-log') this.agentLog = record.body;
    return [];
  }

  /**
   * One `tetra tracingpolicy add` answered. A refusal is final at once; a success waits for
   * the agent's listing (which tells enabled from partially enabled); a policy the load
   * budget left out is charged to the infrastructure, not to the policy.
   */
  private addCheck(record: GuestRecord): CheckDraft[] {
    const index = Number(record.header.file?.replace(/\.yaml$/, ''));
    const policy = this.policies[index];
    if (!policy || record.header.rc === '0') return [];
    const base = { subject: this.subject(policy), check: 'tetragon:load', durationMs: Date.now() - this.started, source: policy.source };
    if (record.header.rc === 'budget') {
      return [{ ...base, status: 'error', reason: 'infra-boot-timeout', evidence: { why: `not added: the load budget ran out at ${record.header.up} s of guest uptime`, agent: this.bundle?.version } }];
    }
    return [{ ...base, status: 'fail', reason: 'load-error', evidence: { agent: this.bundle?.version, tetraAdd: record.body.trim().slice(0, 2000), at: record.header.up } }];
  }

  private loadChecks(record: GuestRecord): CheckDraft[] {
    const [json = '', rest = ''] = record.body.split('\n@@stderr@@\n');
    const [stderr = '', agentTail = ''] = rest.split('\n@@agent@@\n');
    if (agentTail.trim()) this.agentLog = agentTail;
    this.ready = record.header.ready === '1';
    try {
      this.states = parsePolicyList(json);
    } catch {
      this.states = [];
    }
    const waited = Number(record.header.listed) - Number(record.header.started);
    return this.policies.map((p) => {
      const state = this.states?.find((s) => s.name === p.name && (s.namespace || undefined) === p.namespace);
      const verdict = this.ready ? loadVerdict(state) : { status: 'fail' as const, reason: 'load-error' as const };
      return {
        subject: this.subject(p),
        check: 'tetragon:load',
        ...verdict,
        evidence: {
          agent: this.bundle?.version,
          ready: this.ready,
          waitedS: Number.isFinite(waited) ? waited : undefined,
          ...(state ? { state: state.state, ...(state.error ? { error: state.error } : {}) } : { state: 'not listed by the agent' }),
          ...(this.ready ? {} : { agentAlive: record.header.alive === '1', tetra: stderr.trim().slice(-500), agentErrors: agentErrors(this.agentLog) }),
        },
        durationMs: Date.now() - this.started,
        source: p.source,
      };
    });
  }

  finish(outcome: GuestOutcome): CheckDraft[] {
    if (!this.bundle) {
      // Bundles were given, none for this arch: a clear error on every policy, not a quiet skip.
      const have = this.bundles.map((b) => `${b.arch} (${b.source})`).join(', ');
      return this.policies.map((p) => ({
        subject: this.subject(p), check: 'tetragon:load', status: 'error' as const, reason: 'infra-tool-missing' as const,
        evidence: { why: `no Tetragon bundle for ${this.ctx.cell.arch}: the bundles given are ${have}; add --tetragon tetragon-vX.Y.Z-${this.ctx.cell.arch === 'x86_64' ? 'amd64' : 'arm64'}.tar.gz` },
        durationMs: 0, source: p.source,
      }));
    }
    if (outcome.status !== 'done' || !this.states) return [];
    const out: CheckDraft[] = [];
    // An agent that never got ready: attach its own error lines to the load checks' story.
    if (!this.ready) {
      const errors = agentErrors(this.agentLog);
      for (const t of this.triggers) {
        out.push({ subject: t.id, check: 'tetragon:events', status: 'fail', reason: 'load-error', evidence: { why: 'the agent never listed the policies', agentErrors: errors }, durationMs: 0, source: t.source });
      }
      out.push({ subject: 'tetragon', check: 'tetragon:agent', status: 'fail', reason: 'load-error', evidence: { agentErrors: errors, logTail: this.agentLog.slice(-3000) }, durationMs: 0 });
      return out;
    }
    const enabled = new Set(this.states.filter((s) => s.state === 'TP_STATE_ENABLED').map((s) => s.name));
    const unfiltered = enabledHooks(this.policies, enabled, this.ctx.cell.arch, true);
    const hooked = enabledHooks(this.policies, enabled, this.ctx.cell.arch, false);
    const markers = this.triggers.map((t) => t.marker);
    const byMarker = new Map<string, TetragonEvent[]>();
    for (const e of this.events) {
      const m = markerOf(e, markers);
      if (m) byMarker.set(m, [...(byMarker.get(m) ?? []), e]);
    }
    for (const t of this.triggers) {
      const mine = byMarker.get(t.marker) ?? [];
      // An unfiltered hook owes every expected event; a hook behind selectors owes it once its
      // selectors let an event of this trigger through (then the event must match).
      const letThrough = (x: ExpectedEvent) =>
        watched(x, hooked) && mine.some((e) => e.type === x.type && (x.type === 'process_exec' || functionNameMatches('function_name' in x ? x.function_name : '', e.function_name ?? '') || (x.type === 'process_tracepoint' && e.subsys === x.subsys && e.event === x.event)));
      const applicable = t.expect.filter((x) => watched(x, unfiltered) || letThrough(x));
      const base = { subject: t.id, check: 'tetragon:events', durationMs: 0, source: t.source };
      if (applicable.length === 0) {
        out.push({ ...base, status: 'skip', reason: 'untested', evidence: { why: 'no enabled policy hooks what this trigger expects, or its selectors let none of the trigger\'s events through', events: mine.length } });
        continue;
      }
      if (mine.length === 0) {
        out.push({ ...base, status: 'fail', reason: 'no-events', evidence: { expected: applicable, why: `no exported event carries ${t.marker}` } });
        continue;
      }
      const misses = applicable.map((x) => ({ x, m: findMatch(x, mine) })).filter(({ m }) => !('matched' in m));
      if (misses.length === 0) {
        out.push({ ...base, status: 'pass', reason: null, evidence: { matched: applicable.length, events: mine.length, sample: mine.slice(0, 3).map(summarizeEvent) } });
      } else {
        out.push({
          ...base,
          status: 'fail',
          reason: 'event-mismatch',
          evidence: {
            unmatched: misses.map(({ x, m }) => ({ expected: x, ...('nearest' in m ? { nearest: summarizeEvent(m.nearest), differences: m.differences } : { nearest: null }) })),
            events: mine.length,
          },
        });
      }
    }
    // Which policies produced events for the triggers: the agent's runtime evidence.
    for (const p of this.policies) {
      const produced = this.events.filter((e) => e.policy_name === p.name);
      if (!enabled.has(p.name)) continue;
      out.push({
        subject: this.subject(p),
        check: 'tetragon:fired',
        status: produced.length ? 'pass' : 'skip',
        reason: produced.length ? null : 'untested',
        evidence: produced.length ? { events: produced.length, sample: produced.slice(0, 3).map(summarizeEvent) } : { why: 'no trigger event came through this policy (selectors may filter the triggers out)' },
        durationMs: 0,
        source: p.source,
      });
    }
    return out;
  }
}

/**
 * Prediction against reality: where both lanes ran on a cell, every policy whose
 * kernel-lane verdict and Tetragon load state disagree. That is where either
 * bpfgate or Tetragon is wrong.
 */
export function comparePrediction(cell: Cell, results: CheckResult[]): CheckDraft[] {
  const mine = results.filter((r) => r.cell === cell.id);
  const out: CheckDraft[] = [];
  for (const load of mine.filter((r) => r.check === 'tetragon:load')) {
    const kernel = mine.find((r) => r.subject === load.subject && r.check === 'hooks');
    if (!kernel) continue;
    const kernelSaysWorks = kernel.status === 'pass' || kernel.reason === 'untested' || kernel.reason === 'not-fired';
    const agentLoaded = load.status === 'pass';
    // lsm-inactive policies load fine and never fire: the agent loading them agrees with the kernel lane.
    const kernelSaysLoads = kernelSaysWorks || kernel.reason === 'lsm-inactive';
    const agree = kernelSaysLoads === agentLoaded;
    out.push({
      subject: load.subject,
      check: 'prediction',
      status: agree ? 'pass' : 'fail',
      reason: agree ? null : (agentLoaded ? kernel.reason : load.reason),
      evidence: { kernelLane: { status: kernel.status, reason: kernel.reason }, tetragon: { status: load.status, reason: load.reason, ...load.evidence } },
      durationMs: 0,
      ...(load.source ? { source: load.source } : {}),
    });
  }
  return out;
}

export function tetragonSuite(triggers: Trigger[], bundles: TetragonBundle[], agentArgs: string[] = []): VmSuite {
  return {
    kind: 'vm',
    name: 'tetragon',
    lane: 'tetragon-vm',
    // Agent start and policy loads are slow under TCG; then every trigger once.
    budgetMs: LOAD_BUDGET_MS + 60_000 + triggers.length * 2_500,
    session: (ctx) => new TetragonSession(ctx, triggers, bundles, agentArgs),
    derive: comparePrediction,
  };
}

/** With no bundle at all the lane does not boot anything: each policy is a skip that says how to run it. */
export const tetragonNotConfigured: StaticSuite = {
  kind: 'static',
  name: 'tetragon',
  lane: 'tetragon-vm',
  run: (ctx) =>
    ctx.policies.map((p) => ({
      subject: ctx.subjects.get(p) ?? p.name,
      check: 'tetragon:load',
      status: 'skip',
      reason: null,
      evidence: { why: 'no Tetragon bundle given: pass --tetragon with a release tarball (tetragon-vX.Y.Z-amd64.tar.gz / -arm64), its directory, or a URL' },
      durationMs: 0,
      source: p.source,
    })),
};
