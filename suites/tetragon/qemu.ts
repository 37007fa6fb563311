/**
 * The tetragon lane in a QEMU guest: the release bundle laid over the guest's root,
 * the agent started by the guest step (guest/tetragon.sh), the policies added over its
 * API one by one, the triggers run, and the events tied to a marker sent back. This
 * adapter only moves the plan into guest files and the guest's records into agent
 * reports; plan.ts and judge.ts decide.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import { assetPath } from '../../core/assets.js';
import type { CellContext } from '../../core/suite.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import type { GuestFile, QemuSession } from '../../runners/qemu/session.js';
import type { GuestOutcome } from '../../runners/qemu/vm.js';
import type { Trigger } from '../triggers/model.js';
import { triggerGuestFiles } from '../triggers/guest-files.js';
import { argsFile } from './args.js';
import { loadOrder } from './boots.js';
import type { TetragonBundle } from './bundle.js';
import { readExport } from './events.js';
import { judgeAdd, judgeAgent, judgeLoads, judgeTriggers, type AgentReport } from './judge.js';
import { HOOK_LOG_LINE, parsePolicyList, type PolicyLoadState } from './load-state.js';
import { agentFlags, asApplied, LOAD_BUDGET_MS, planTetragonCell, type TetragonOptions, type TetragonPlan } from './plan.js';

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

/** A `tp-list` record: the agent's listing in its body, tetra's stderr and the agent's log tail in its parts. */
function reportOf(record: GuestRecord): AgentReport {
  let states: PolicyLoadState[];
  try {
    states = parsePolicyList(record.body);
  } catch {
    states = [];
  }
  const waited = Number(record.header.listed) - Number(record.header.started);
  return {
    ready: record.header.ready === '1',
    alive: record.header.alive === '1',
    states,
    events: [],
    agentLog: record.parts?.['agent-tail']?.body ?? '',
    hookLog: record.parts?.['hook-log']?.body ?? '',
    tetraStderr: record.parts?.['tp-list-stderr']?.body ?? '',
    ...(Number.isFinite(waited) ? { waitedS: waited } : {}),
  };
}

/** The `trigger-pids` part: "PID MARKER" per trigger, the process each trigger's steps ran as in this boot. */
export function triggerPids(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [pid, marker] = line.trim().split(/\s+/);
    if (pid && marker && /^\d+$/.test(pid)) out.set(Number(pid), marker);
  }
  return out;
}

export class TetragonQemuSession implements QemuSession {
  private readonly plan: TetragonPlan;
  private readonly reports = new Map<number, AgentReport>();
  private readonly started = Date.now();

  constructor(
    private readonly ctx: CellContext,
    private readonly triggers: readonly Trigger[],
    private readonly bundles: readonly TetragonBundle[],
    private readonly options: TetragonOptions,
  ) {
    this.plan = planTetragonCell(ctx, bundles, options);
  }

  boots(): number {
    return this.plan.bootCount;
  }

  guestFiles(boot: number): GuestFile[] {
    const { bundle, policies, names, bootOf } = this.plan;
    if (!bundle) return [];
    return [
      ...bundleFiles(bundle),
      { path: '/bpfgate/steps/30-tetragon.sh', content: readFileSync(assetPath('suites', 'tetragon', 'guest', 'tetragon.sh')) },
      { path: '/bpfgate/tetragon/tied-events.awk', content: readFileSync(assetPath('suites', 'tetragon', 'guest', 'tied-events.awk')) },
      { path: '/bpfgate/tetragon/markers', content: this.triggers.map((t) => t.marker).join('\n') + '\n' },
      // The log lines the host reads single hooks from: the guest sends those, and only those.
      { path: '/bpfgate/tetragon/hook-log-pattern', content: `${HOOK_LOG_LINE.source}\n` },
      { path: '/bpfgate/tetragon/args', content: argsFile(agentFlags(policies.filter((_, i) => bootOf[i] === boot), this.options.agentArgs)) },
      { path: '/bpfgate/tetragon/env', content: `BPFGATE_TETRAGON_LOAD_BUDGET=${Math.round(LOAD_BUDGET_MS / 1000)}\n` },
      // Named <load order>-<index in the cell>: the guest adds them in name order, and a record
      // names its policy whatever the boot.
      ...loadOrder(policies, policies.flatMap((_, i) => (bootOf[i] === boot ? [i] : []))).map((i, n) => ({
        path: `/bpfgate/tetragon/policies/${String(n).padStart(3, '0')}-${String(i).padStart(3, '0')}.yaml`,
        content: JSON.stringify(asApplied(policies[i]!, names[i]!)),
      })),
      // The policies suite may share boot 0: its triggers are numbered from 0, these from 500.
      // Every boot runs every trigger: each boot's policies owe their events.
      ...triggerGuestFiles([...this.triggers], 500, '/bpfgate/tetragon/triggers'),
    ];
  }

  memoryMiB(): number {
    return this.plan.bundle ? 4096 : 0;
  }

  planned(): PlannedCheck[] {
    const loads = this.plan.policies.map((p, i) => ({ subject: this.plan.subjects[i]!, check: 'tetragon:load', source: p.source }));
    if (!this.plan.bundle) return loads;
    return [...loads, ...this.triggers.map((t) => ({ subject: t.id, check: 'tetragon:events', source: t.source }))];
  }

  onRecord(record: GuestRecord, boot = 0): CheckDraft[] {
    if (record.type === 'tp-add') {
      const check = judgeAdd(
        this.plan,
        { policy: Number(/-(\d+)\.yaml$/.exec(record.header.file ?? '')?.[1]), rc: record.header.rc ?? '', output: record.body, at: record.header.up ?? '' },
        Date.now() - this.started,
      );
      return check ? [check] : [];
    }
    if (record.type === 'tp-list') {
      const report = reportOf(record);
      this.reports.set(boot, report);
      return judgeLoads(this.plan, boot, report, Date.now() - this.started);
    }
    // Both come after the boot's tp-list, which opened its report.
    const report = this.reports.get(boot);
    if (report && record.type === 'tetragon-events') {
      report.events = readExport(record.body, `${this.ctx.cell.id}:tetragon.log`, { tolerant: true }).events;
      report.roots = { pids: triggerPids(record.parts?.['trigger-pids']?.body ?? '') };
    }
    if (report && record.type === 'agent-log' && record.body) report.agentLog = record.body;
    return [];
  }

  finish(outcome: GuestOutcome, boot = 0): CheckDraft[] {
    if (!this.plan.bundle) {
      if (boot > 0) return [];
      // Bundles were given, none for this arch: a clear error on every policy, not a quiet skip.
      const have = this.bundles.map((b) => `${b.arch} (${b.source})`).join(', ');
      return this.plan.policies.map((p, i) => ({
        subject: this.plan.subjects[i]!, check: 'tetragon:load', status: 'error' as const, reason: 'infra-tool-missing' as const,
        evidence: { why: `no Tetragon bundle for ${this.ctx.cell.arch}: the bundles given are ${have}; add --tetragon tetragon-vX.Y.Z-${this.ctx.cell.arch === 'x86_64' ? 'amd64' : 'arm64'}.tar.gz` },
        durationMs: 0, source: p.source,
      }));
    }
    const report = this.reports.get(boot);
    if (outcome.status !== 'done' || !report) {
      this.reports.delete(boot);
      return [];
    }
    return judgeAgent(this.plan, boot, report);
  }

  complete(): CheckDraft[] {
    // A boot that died has no report: its policies' and the triggers' planned checks are charged to it.
    if (!this.plan.bundle || this.reports.size < this.plan.bootCount) return [];
    return judgeTriggers(this.plan, this.triggers, [...this.reports.values()], this.ctx.cell.arch);
  }
}
