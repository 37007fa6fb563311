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
import { hasSelectors, hookSpec } from '../../policy/spec.js';
import type { CellContext, CheckDraft, GuestFile, PlannedCheck, StaticSuite, VmSuite, VmSuiteSession } from '../suite.js';
import type { ExpectedEvent, Trigger } from '../triggers/model.js';
import { triggerGuestFiles } from '../triggers/guest-files.js';
import { kprobeSymbol } from '../policies/targets.js';
import { readExport, summarizeEvent, type TetragonEvent } from './events.js';
import { agentErrors, loadVerdict, parsePolicyList, type PolicyLoadState } from './load-state.js';
import { findMatch, functionNameMatches, markerOf } from './match.js';
import { loadOrder, planBoots, programSets, TCG_SECONDS_PER_PROGRAM_SET } from './boots.js';
import { selectorsMayPass } from './selectors.js';

/** Guest seconds, from the agent's start, for loading policies; the verifier is slow under TCG. */
const LOAD_BUDGET_MS = 360_000;

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
 * The name each policy goes by in the agent. Corpora reuse names (four examples are called
 * `syscalls`) and the agent refuses a second policy with a name it holds, which would read
 * as a load error of the policy; so every later holder of a name gets a numbered one.
 */
export function agentNames(policies: readonly Policy[]): string[] {
  const taken = new Set<string>();
  return policies.map((p) => {
    let name = p.name;
    for (let n = 2; taken.has(name); n++) name = `${p.name}-${n}`;
    taken.add(name);
    return name;
  });
}

/** The namespace a policy lands in: a namespaced one without one goes to `default`, as `kubectl apply` puts it. */
function appliedNamespace(policy: Policy): string | undefined {
  return policy.namespace ?? (policy.kind === 'TracingPolicyNamespaced' ? 'default' : undefined);
}

/** The policy document as the agent gets it: only `metadata.name` and `metadata.namespace` may differ. */
function asApplied(policy: Policy, name: string): unknown {
  const d = policy.doc as { metadata?: Record<string, unknown> };
  const namespace = appliedNamespace(policy);
  return { ...d, metadata: { ...d.metadata, name, ...(namespace ? { namespace } : {}) } };
}

/**
 * Agent flags: the user's, plus the policy filter when a namespaced policy is loaded. The
 * release tarball leaves it off and the agent then refuses every namespaced policy; the
 * Kubernetes deployments such policies are written for run with it on.
 */
function agentFlags(policies: readonly Policy[], userArgs: readonly string[]): string[] {
  const namespaced = policies.some((p) => p.kind === 'TracingPolicyNamespaced');
  return namespaced && !userArgs.some((a) => a.startsWith('--enable-policy-filter')) ? [...userArgs, '--enable-policy-filter'] : [...userArgs];
}

/** A hook of an enabled policy: `kind:name` as events name it, and its policy entry. */
interface EnabledHook {
  key: string;
  spec: Record<string, unknown> | undefined;
  /** Behind selectors: it exports only the hits they let through. */
  filtered: boolean;
}

function enabledHooks(policies: Policy[], enabled: Set<Policy>, arch: Cell['arch']): EnabledHook[] {
  return policies.filter((p) => enabled.has(p)).flatMap((p) =>
    p.hooks.map((h) => {
      const kind = h.kind === 'rawtp' ? 'tracepoint' : h.kind;
      return { key: `${kind}:${h.kind === 'kprobe' ? kprobeSymbol(h, arch) : h.name}`, spec: hookSpec(p, h), filtered: hasSelectors(p, h) };
    }),
  );
}

/** The enabled hooks that watch what this expectation is about. */
function watching(expected: ExpectedEvent, hooks: EnabledHook[]): EnabledHook[] {
  if (expected.type === 'process_exec') return [];
  if (expected.type === 'process_tracepoint') return hooks.filter((h) => h.key === `tracepoint:${expected.subsys}/${expected.event}`);
  const kind = expected.type === 'process_lsm' ? 'lsm' : 'kprobe';
  return hooks.filter((h) => h.key.startsWith(`${kind}:`) && functionNameMatches(expected.function_name, h.key.slice(kind.length + 1)));
}

/** What one boot of the cell reported. */
interface BootReport {
  ready: boolean;
  states: PolicyLoadState[];
  events: TetragonEvent[];
  agentLog: string;
}

class TetragonSession implements VmSuiteSession {
  private readonly bundle: TetragonBundle | undefined;
  private readonly policies;
  private readonly names: string[];
  /** The boot each policy is loaded in. */
  private readonly bootOf: number[];
  private readonly bootCount: number;
  private readonly reports = new Map<number, BootReport>();
  private readonly started = Date.now();

  constructor(
    private readonly ctx: CellContext,
    private readonly triggers: Trigger[],
    private readonly bundles: TetragonBundle[],
    private readonly options: TetragonOptions,
  ) {
    this.bundle = bundleFor(bundles, ctx.cell.arch);
    this.policies = ctx.policies.filter((p) => (ctx.policyProblems.get(p) ?? []).length === 0);
    this.names = agentNames(this.policies);
    const multi = usesKprobeMulti(ctx, options.agentArgs);
    const costs = this.policies.map((p) => programSets(p, multi));
    // Under KVM the verifier runs at native speed: one boot holds the corpus.
    const boots = !this.bundle || (ctx.accel === 'kvm' && (options.boots ?? 'auto') === 'auto') ? 1 : (options.boots ?? 'auto');
    const plan = planBoots(this.policies, costs, { boots, budgetSeconds: LOAD_BUDGET_MS / 1000, secondsPerSet: TCG_SECONDS_PER_PROGRAM_SET[ctx.cell.arch] });
    this.bootCount = plan.count;
    this.bootOf = plan.bootOf;
  }

  private subject(p: (typeof this.policies)[number]): string {
    return this.ctx.subjects.get(p) ?? p.name;
  }

  boots(): number {
    return this.bootCount;
  }

  guestFiles(boot: number): GuestFile[] {
    if (!this.bundle) return [];
    return [
      ...bundleFiles(this.bundle),
      { path: '/bpfgate/steps/30-tetragon.sh', content: readFileSync(assetPath('suites', 'tetragon', 'guest', 'tetragon.sh')) },
      { path: '/bpfgate/tetragon/markers', content: this.triggers.map((t) => t.marker).join('\n') + '\n' },
      { path: '/bpfgate/tetragon/args', content: agentFlags(this.policies.filter((_, i) => this.bootOf[i] === boot), this.options.agentArgs).join(' ') + '\n' },
      { path: '/bpfgate/tetragon/env', content: `BPFGATE_TETRAGON_LOAD_BUDGET=${Math.round(LOAD_BUDGET_MS / 1000)}\n` },
      // Named <load order>-<index in the cell>: the guest adds them in name order, and a record
      // names its policy whatever the boot.
      ...loadOrder(this.policies, this.policies.flatMap((_, i) => (this.bootOf[i] === boot ? [i] : []))).map((i, n) => ({
        path: `/bpfgate/tetragon/policies/${String(n).padStart(3, '0')}-${String(i).padStart(3, '0')}.yaml`,
        content: JSON.stringify(asApplied(this.policies[i]!, this.names[i]!)),
      })),
      // The policies suite may share boot 0: its triggers are numbered from 0, these from 500.
      // Every boot runs every trigger: each boot's policies owe their events.
      ...triggerGuestFiles(this.triggers, 500, '/bpfgate/tetragon/triggers'),
    ];
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

  onRecord(record: GuestRecord, boot = 0): CheckDraft[] {
    if (record.type === 'tp-add') return this.addCheck(record);
    if (record.type === 'tp-list') return this.loadChecks(record, boot);
    // Both come after the boot's tp-list, which opened its report.
    const report = this.reports.get(boot);
    if (report && record.type === 'tetragon-events') report.events = readExport(record.body, `${this.ctx.cell.id}:tetragon.log`, { tolerant: true }).events;
    if (report && record.type === 'agent-log' && record.body) report.agentLog = record.body;
    return [];
  }

  /**
   * One `tetra tracingpolicy add` answered. A refusal is final at once; a success waits for
   * the agent's listing (which tells enabled from partially enabled); a policy the load
   * budget left out is charged to the infrastructure, not to the policy.
   */
  private addCheck(record: GuestRecord): CheckDraft[] {
    const index = Number(/-(\d+)\.yaml$/.exec(record.header.file ?? '')?.[1]);
    const policy = this.policies[index];
    if (!policy || record.header.rc === '0') return [];
    // tetra gave up waiting, the agent did not: the listing says how the load ended.
    if (/DeadlineExceeded|context deadline exceeded/.test(record.body)) return [];
    const base = { subject: this.subject(policy), check: 'tetragon:load', durationMs: Date.now() - this.started, source: policy.source };
    if (record.header.rc === 'budget') {
      return [{ ...base, status: 'error', reason: 'infra-boot-timeout', evidence: { why: `not added: the load budget ran out at ${record.header.up} s of guest uptime`, agent: this.bundle?.version, boot: this.bootOf[index]! + 1 } }];
    }
    return [{ ...base, status: 'fail', reason: 'load-error', evidence: { agent: this.bundle?.version, tetraAdd: record.body.trim().slice(0, 2000), at: record.header.up, ...(this.bootCount > 1 ? { boot: this.bootOf[index]! + 1 } : {}) } }];
  }

  private loadChecks(record: GuestRecord, boot: number): CheckDraft[] {
    const [json = '', rest = ''] = record.body.split('\n@@stderr@@\n');
    const [stderr = '', agentTail = ''] = rest.split('\n@@agent@@\n');
    let states: PolicyLoadState[];
    try {
      states = parsePolicyList(json);
    } catch {
      states = [];
    }
    const ready = record.header.ready === '1';
    this.reports.set(boot, { ready, states, events: [], agentLog: agentTail });
    const waited = Number(record.header.listed) - Number(record.header.started);
    return this.policies.flatMap((p, i) => {
      if (this.bootOf[i] !== boot) return [];
      const name = this.names[i]!;
      const state = states.find((s) => s.name === name && (s.namespace || undefined) === appliedNamespace(p));
      const verdict = ready ? loadVerdict(state) : { status: 'fail' as const, reason: 'load-error' as const };
      return [{
        subject: this.subject(p),
        check: 'tetragon:load',
        ...verdict,
        evidence: {
          agent: this.bundle?.version,
          ...(name !== p.name ? { agentName: name } : {}),
          ...(this.bootCount > 1 ? { boot: boot + 1 } : {}),
          ready,
          waitedS: Number.isFinite(waited) ? waited : undefined,
          ...(state ? { state: state.state, ...(state.error ? { error: state.error } : {}) } : { state: 'not listed by the agent' }),
          ...(ready ? {} : { agentAlive: record.header.alive === '1', tetra: stderr.trim().slice(-500), agentErrors: agentErrors(agentTail) }),
        },
        durationMs: Date.now() - this.started,
        source: p.source,
      }];
    });
  }

  finish(outcome: GuestOutcome, boot = 0): CheckDraft[] {
    if (!this.bundle) {
      if (boot > 0) return [];
      // Bundles were given, none for this arch: a clear error on every policy, not a quiet skip.
      const have = this.bundles.map((b) => `${b.arch} (${b.source})`).join(', ');
      return this.policies.map((p) => ({
        subject: this.subject(p), check: 'tetragon:load', status: 'error' as const, reason: 'infra-tool-missing' as const,
        evidence: { why: `no Tetragon bundle for ${this.ctx.cell.arch}: the bundles given are ${have}; add --tetragon tetragon-vX.Y.Z-${this.ctx.cell.arch === 'x86_64' ? 'amd64' : 'arm64'}.tar.gz` },
        durationMs: 0, source: p.source,
      }));
    }
    const report = this.reports.get(boot);
    if (outcome.status !== 'done' || !report) {
      this.reports.delete(boot);
      return [];
    }
    if (report.ready) return [];
    // An agent that never got ready: its own error lines are the evidence.
    const errors = agentErrors(report.agentLog);
    const subject = boot === 0 ? 'tetragon' : `tetragon (boot ${boot + 1} of ${this.bootCount})`;
    return [{ subject, check: 'tetragon:agent', status: 'fail', reason: 'load-error', evidence: { agentErrors: errors, logTail: report.agentLog.slice(-3000) }, durationMs: 0 }];
  }

  /** The triggers' checks, on the events of every boot together (each boot ran every trigger). */
  complete(): CheckDraft[] {
    if (!this.bundle) return [];
    const reports = [...this.reports.values()];
    // A boot that died has no report: its policies' and the triggers' planned checks are charged to it.
    if (reports.length < this.bootCount) return [];
    const ready = reports.filter((r) => r.ready);
    if (ready.length === 0) {
      const errors = reports.flatMap((r) => agentErrors(r.agentLog));
      return this.triggers.map((t) => ({ subject: t.id, check: 'tetragon:events', status: 'fail' as const, reason: 'load-error' as const, evidence: { why: 'the agent never listed the policies', agentErrors: errors }, durationMs: 0, source: t.source }));
    }
    const out: CheckDraft[] = [];
    const events = ready.flatMap((r) => r.events);
    const enabledNames = new Set(ready.flatMap((r) => r.states).filter((s) => s.state === 'TP_STATE_ENABLED').map((s) => s.name));
    const enabled = new Set(this.policies.filter((_, i) => enabledNames.has(this.names[i]!)));
    const hooks = enabledHooks(this.policies, enabled, this.ctx.cell.arch);
    const markers = this.triggers.map((t) => t.marker);
    const byMarker = new Map<string, TetragonEvent[]>();
    for (const e of events) {
      const m = markerOf(e, markers);
      if (m) byMarker.set(m, [...(byMarker.get(m) ?? []), e]);
    }
    for (const t of this.triggers) {
      const mine = byMarker.get(t.marker) ?? [];
      // An exec is always exported; an unfiltered hook owes every expected event; a hook
      // behind selectors owes it when the selectors can let it through (selectors.ts) and
      // did let an event of this trigger through at that hook (then the event must match).
      const cameThrough = (x: ExpectedEvent) =>
        mine.some((e) => e.type === x.type && (functionNameMatches('function_name' in x ? x.function_name : '', e.function_name ?? '') || (x.type === 'process_tracepoint' && e.subsys === x.subsys && e.event === x.event)));
      const owed = (x: ExpectedEvent) => {
        if (x.type === 'process_exec') return true;
        const hs = watching(x, hooks);
        return hs.some((h) => !h.filtered) || (hs.some((h) => selectorsMayPass(h.spec, x)) && cameThrough(x));
      };
      const applicable = t.expect.filter(owed);
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
    for (const [i, p] of this.policies.entries()) {
      if (!enabled.has(p)) continue;
      const produced = events.filter((e) => e.policy_name === this.names[i]);
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
    // Nothing to compare where either lane has no verdict (an infra error, a skip).
    if (!kernel || load.status === 'error' || load.status === 'skip' || kernel.status === 'error') continue;
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

export interface TetragonOptions {
  /** Extra agent flags (`--disable-kprobe-multi`). */
  agentArgs: string[];
  /** Boots per cell the policies are spread over; `auto` sizes them to the load budget (one under KVM). */
  boots?: number | 'auto';
}

/** Does the agent attach a policy's kprobes with one kprobe.multi link on this cell? */
function usesKprobeMulti(ctx: CellContext, agentArgs: string[]): boolean {
  if (agentArgs.includes('--disable-kprobe-multi')) return false;
  // Tetragon needs fprobe (CONFIG_FPROBE); the kernel lane measured it on x86_64 only.
  return ctx.cell.arch === 'x86_64' && ctx.kernelConfig?.get('CONFIG_FPROBE') === 'y';
}

export function tetragonSuite(triggers: Trigger[], bundles: TetragonBundle[], options: TetragonOptions = { agentArgs: [] }): VmSuite {
  return {
    kind: 'vm',
    name: 'tetragon',
    lane: 'tetragon-vm',
    // Agent start and policy loads are slow under TCG; then every trigger once.
    budgetMs: LOAD_BUDGET_MS + 60_000 + triggers.length * 2_500,
    session: (ctx) => new TetragonSession(ctx, triggers, bundles, options),
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
