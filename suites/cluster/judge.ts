/**
 * A node's verdicts from what its agent and its trigger pods left behind: pure, so the
 * same function judges a live node and the files of a cell's directory (NODE_FILES),
 * which is how the unit tests replay real nodes.
 *
 *   cluster:events                       the triggers' expectations on the agent's stream,
 *                                        excused as infra-events-lost while the agent
 *                                        counted lost events
 *   pod-metadata                         each trigger's events name its pod
 *   pod-metadata:after-runtime-restart   the same for the pods started after the node's
 *                                        container runtime restarted (opt-in scenario)
 */
import type { CheckDraft } from '../../core/check.js';
import type { Arch } from '../../matrix/cell.js';
import { unlessLost, type LostCounts } from '../tetragon/agent-metrics.js';
import type { TetragonEvent } from '../tetragon/events.js';
import { judgeTriggers, type AgentReport, type CheckNames } from '../tetragon/judge.js';
import type { TetragonPlan } from '../tetragon/plan.js';
import type { Trigger } from '../triggers/model.js';
import { judgeAfterRestart, judgePodMetadata, type RuntimeRestart, type TriggerPod } from './pod.js';

export const CLUSTER_CHECKS: CheckNames = { load: 'cluster:load', events: 'cluster:events', fired: 'cluster:fired', agent: 'cluster:agent' };
export const POD_METADATA_CHECK = 'pod-metadata';
/** The label every trigger pod carries, its value the trigger's id: it roots the trigger's events. */
export const TRIGGER_LABEL = 'bpfgate.dev/trigger';
/** The pod metadata of the triggers run again after the node's container runtime restarted. */
export const AFTER_RESTART_CHECK = 'pod-metadata:after-runtime-restart';

/** The raw evidence a node leaves in its cell's directory, one file each. */
export const NODE_FILES = {
  /** `tetra tracingpolicy list -o json` in the node's agent pod, as it answered last. */
  listing: 'tracingpolicy-list.json',
  /** The agent's gRPC stream (`tetra getevents -o json`) while the trigger pods ran. */
  events: 'agent-events.jsonl',
  /** The same stream for the round after the runtime restart. */
  eventsAfterRestart: 'agent-events-after-restart.jsonl',
  /** The agent's Prometheus metrics before the first trigger pod and after the last. */
  metricsBefore: 'agent-metrics-before.prom',
  metrics: 'agent-metrics.prom',
  /** The agent container's log, its last 2000 lines. */
  log: 'agent.log',
  /** Each trigger pod as it ended, and the runtime restart between the rounds (TriggerPods). */
  pods: 'trigger-pods.json',
} as const;

/** The body of NODE_FILES.pods. */
export interface TriggerPods {
  /** How the agent's event stream went: filtered or not, ended and opened again (absent in files of older runs). */
  stream?: string;
  before: Record<string, TriggerPod>;
  restart?: RuntimeRestart;
  after?: Record<string, TriggerPod>;
}

/** One round of trigger pods: how each ended, and the events the agent streamed meanwhile. */
export interface RoundEvidence {
  pods: ReadonlyMap<string, TriggerPod>;
  events: readonly TetragonEvent[];
}

export interface NodeEvidence {
  node: string;
  arch: Arch;
  /** The agent's load states (ready: it answered with every policy listed). */
  report: AgentReport;
  first: RoundEvidence;
  /** The runtime restart and the round after it, when the scenario ran. */
  restart?: { runtime: RuntimeRestart; round: RoundEvidence };
  /** The agent's log, for its `criResolve failed` lines. */
  agentLog: string;
  /** Events the agent counted lost while the triggers ran; undefined when unknown. */
  lost: LostCounts | undefined;
  /** Why `lost` is unknown, when it is. */
  lostUnknown?: string;
  /** The agent's CRI lookup was on. */
  criLookup: boolean;
}

/** The trigger-phase verdicts of one node (its load verdicts come first, from judgeLoads). */
export function judgeNode(plan: TetragonPlan, triggers: readonly Trigger[], ev: NodeEvidence): CheckDraft[] {
  const out: CheckDraft[] = [];
  // A trigger's events are its pod's (and its process tree's, and those carrying its marker).
  const roots = { podLabel: { key: TRIGGER_LABEL, markerOf: new Map(triggers.map((t) => [t.id, t.marker])) } };
  const report: AgentReport = { ...ev.report, events: [...ev.first.events], roots };
  for (const check of judgeTriggers(plan, triggers, [report], ev.arch, CLUSTER_CHECKS, { inPods: true })) {
    const pod = ev.first.pods.get(check.subject);
    const evidence = { ...check.evidence, node: ev.node, lost: ev.lost ?? ev.lostUnknown, ...(pod ? { pod: `${pod.namespace}/${pod.name}`, podPhase: pod.phase } : {}) };
    out.push(unlessLost({ ...check, evidence }, ev.lost));
  }
  for (const t of triggers) out.push({ ...judgePodMetadata(t, ev.first.pods.get(t.id), ev.first.events), source: t.source });
  if (ev.restart) {
    const { runtime, round } = ev.restart;
    for (const t of triggers) {
      const check = judgePodMetadata(t, round.pods.get(t.id), round.events);
      out.push({ ...judgeAfterRestart(check, runtime, ev.agentLog, ev.criLookup), source: t.source });
    }
  }
  return out;
}
