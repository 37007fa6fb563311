/**
 * The cluster suite on a Kubernetes platform, per node, through the API:
 *
 *   once per cluster  a namespace for the run; the agent found by its labels, or
 *                     installed by its Helm chart (bpfgate's values, the user's on top);
 *                     every valid policy applied server-side with strict validation
 *                     (TracingPolicyNamespaced into the run's namespace)
 *   per node          the node's agent pod Ready, or why not; its load state of every
 *                     policy from `tetra tracingpolicy list` in that pod, until settled;
 *                     its gRPC event stream (`tetra getevents`), which the export file's
 *                     deny list cannot thin out, so an event without its pod is still
 *                     seen; each trigger as a pod pinned to the node; the events judged
 *                     against the triggers' expectations and the trigger pod's metadata
 *   teardown          policies, the release, the namespace: what bpfgate created, only
 *
 * Judging is shared with the QEMU agent lane (suites/tetragon/judge.ts) plus pod.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import { InfraError } from '../../core/errors.js';
import type { CellContext } from '../../core/suite.js';
import type { Arch } from '../../matrix/cell.js';
import { isReady, objectPath, podEnded, type KubeObject } from '../../runners/kube/api.js';
import { helmInstall, helmUninstall } from '../../runners/kube/helm.js';
import type { KubeCluster, KubeNode, KubeSession } from '../../runners/kube/session.js';
import { bundleFor, type TetragonBundle } from '../tetragon/bundle.js';
import { readExport, type TetragonEvent } from '../tetragon/events.js';
import { counterValue, lostBetween, lostCounts, type LostCounts } from '../tetragon/agent-metrics.js';
import { agentErrors, HOOK_LOG_LINE, parsePolicyList, type PolicyLoadState } from '../tetragon/load-state.js';
import { judgeLoads, type AgentReport } from '../tetragon/judge.js';
import { programSets, TCG_AGENT_START_SECONDS, TCG_SECONDS_PER_PROGRAM_SET } from '../tetragon/boots.js';
import { asApplied, planTetragonCell, type TetragonPlan } from '../tetragon/plan.js';
import type { Trigger } from '../triggers/model.js';
import { nodeImageFiles, TRIGGER_GATE, TRIGGER_IMAGE, tetragonTag, triggerCommand } from './images.js';
import { AFTER_RESTART_CHECK, CLUSTER_CHECKS, judgeNode, NODE_FILES, POD_METADATA_CHECK, TRIGGER_LABEL, type TriggerPods } from './judge.js';
import type { RuntimeRestart, TriggerPod } from './pod.js';


const AGENT_LABEL = 'app.kubernetes.io/name=tetragon';
/** The chart's default metrics port (values `tetragon.prometheus.port`). */
const AGENT_METRICS_PORT = 2112;
/** The agent's count of CRI lookups tried (pkg/metrics/crimetrics, v1.5.0). */
const CRI_RESOLUTIONS = 'tetragon_cri_cgidmap_resolutions_total';

export interface ClusterOptions {
  bundles: readonly TetragonBundle[];
  /** The agent's chart (reference, directory or .tgz), installed when the cluster has no agent. */
  chart?: string;
  /** The helm binary. */
  helm: string;
  /** The user's values files, on top of bpfgate's. */
  valuesFiles: readonly string[];
  /** Turn on the agent's CRI lookup and cgidmap (the K3s socket scenario). */
  cri?: boolean;
  /** Seconds a node's agent gets to settle every policy; default: 60 plus 25 per policy. */
  loadBudgetS?: number;
  /** Trigger pods run at once on one node. */
  parallel?: number;
  /**
   * Restart the container runtime on each node after the triggers, then run them again and
   * judge the pod metadata of the pods started after it (opt-in: it disrupts the node).
   * `containerd` kills containerd (its supervisor starts it again: a new socket inode, as K3s
   * does); `k3s` restarts the k3s service on the host.
   */
  restartRuntime?: 'containerd' | 'k3s';
  /** How the agent mounts the CRI socket: the chart's own (the socket file) or its directory (upstream's later fix). */
  criMount?: 'file' | 'directory';
}

/** A round of trigger pods: how each ended, and what the agent streamed meanwhile. */
interface Round {
  pods: Map<string, TriggerPod>;
  lines: string[];
  events: TetragonEvent[];
  /** How the event stream went (reopened, and why). */
  stream: string;
}

/** What the one-per-cluster setup made. */
interface ClusterSetup {
  namespace: string;
  /** Where the agent runs, and whether bpfgate installed it. */
  agent: { namespace: string; installed?: { release: string } };
  /** Policies the API server refused (strict validation), by plan index. */
  refused: Map<number, { status: number; message: string }>;
  /** Applied objects, for the teardown. */
  applied: KubeObject[];
}

/**
 * Upstream's fix for the stale socket (tetragon PR #5025, in no release up to v1.7):
 * the agent mounts the CRI socket's directory instead of the socket file. Applied to the
 * installed DaemonSet as a post-render patch, then waited for until rolled out.
 */
async function mountSocketDirectory(cluster: KubeCluster, namespace: string): Promise<void> {
  const { api } = cluster;
  const dir = cluster.criSocket.slice(0, cluster.criSocket.lastIndexOf('/'));
  type Ds = KubeObject & { spec: { template: { spec: { volumes?: { name: string; hostPath?: { path: string; type?: string } }[]; containers: { name: string; volumeMounts?: { name: string; mountPath: string }[] }[] } } }; status?: { desiredNumberScheduled?: number; updatedNumberScheduled?: number; numberReady?: number } };
  for (const ds of await api.list<Ds>('apps/v1', 'DaemonSet', { namespace, labelSelector: AGENT_LABEL })) {
    const pod = ds.spec.template.spec;
    const volume = pod.volumes?.find((v) => v.name === 'cri-socket');
    if (!volume?.hostPath) throw new InfraError('infra-chart', `the chart's DaemonSet ${ds.metadata.name} mounts no cri-socket volume to change`);
    volume.hostPath = { path: dir, type: 'Directory' };
    for (const c of pod.containers) for (const m of c.volumeMounts ?? []) if (m.name === 'cri-socket') m.mountPath = dir;
    await api.must('PUT', objectPath(ds), ds);
    const rolled = await api.waitFor(async () => {
      const now = await api.get<Ds>(objectPath(ds));
      const s = now?.status;
      return s && s.desiredNumberScheduled !== undefined && s.updatedNumberScheduled === s.desiredNumberScheduled && s.numberReady === s.desiredNumberScheduled ? true : undefined;
    }, 300_000, 2000, cluster.signal);
    if (!rolled) throw new InfraError('infra-agent-not-ready', `the agent DaemonSet ${ds.metadata.name} did not roll out with the socket directory mounted in 300 s`);
  }
}

/**
 * Seconds a node's agent gets to settle its policies: its start, then each BPF program
 * set at the verifier's emulated speed for the arch (boots.ts), with room for a node that
 * shares two cores with another; under KVM the verifier runs at native speed.
 */
export function loadBudgetSeconds(plan: TetragonPlan, arch: Arch, accel: 'kvm' | 'tcg' | undefined): number {
  if (accel === 'kvm') return 180;
  const sets = plan.policies.reduce((n, p) => n + programSets(p, arch === 'x86_64'), 0);
  return TCG_AGENT_START_SECONDS + Math.ceil(1.5 * sets * TCG_SECONDS_PER_PROGRAM_SET[arch]);
}

/**
 * Seconds a node's agent gets from its pod's start to its first answer: under TCG it
 * loads its base sensors through the emulated verifier, on a node that also runs the
 * kubelet and containerd (measured: about 40 s on x86_64, over 60 s on arm64).
 */
export function agentStartSeconds(arch: Arch, accel: 'kvm' | 'tcg' | undefined): number {
  if (accel === 'kvm') return 60;
  return arch === 'x86_64' ? 150 : 300;
}

export class ClusterKubeSession implements KubeSession {
  private readonly plan: TetragonPlan;

  constructor(
    private readonly ctx: CellContext,
    private readonly triggers: readonly Trigger[],
    private readonly options: ClusterOptions,
  ) {
    this.plan = planTetragonCell(ctx, options.bundles, { agentArgs: [], boots: 1 });
  }

  planned(): PlannedCheck[] {
    return [
      ...this.plan.policies.map((p, i) => ({ subject: this.plan.subjects[i]!, check: CLUSTER_CHECKS.load, source: p.source })),
      ...this.triggers.flatMap((t) => [
        { subject: t.id, check: CLUSTER_CHECKS.events, source: t.source },
        { subject: t.id, check: POD_METADATA_CHECK, source: t.source },
        ...(this.options.restartRuntime ? [{ subject: t.id, check: AFTER_RESTART_CHECK, source: t.source }] : []),
      ]),
    ];
  }

  nodeImages(arch: Arch): Promise<string[]> {
    return nodeImageFiles(arch, this.options.bundles);
  }

  async run(node: KubeNode, cluster: KubeCluster, emit: (draft: CheckDraft) => void): Promise<void> {
    const started = Date.now();
    cluster.phase(node.cell, 'setup', 'namespace, agent, policies');
    const setup = await cluster.shared('cluster-suite', () => this.setup(cluster), (s) => this.teardown(cluster, s));
    cluster.phase(node.cell, 'agent', `waiting for the agent pod on ${node.name}`);
    const plan = this.namedPlan(cluster, setup);

    // The apiserver's refusals are the policies' verdicts, on every node.
    for (const [i, refusal] of setup.refused) {
      const p = plan.policies[i]!;
      emit({ subject: plan.subjects[i]!, check: CLUSTER_CHECKS.load, status: 'fail', reason: 'schema-invalid', evidence: { refusedBy: 'kube-apiserver', status: refusal.status, message: refusal.message }, durationMs: 0, source: p.source });
    }
    const agent = await this.agentPod(node, cluster, setup);
    if ('notReady' in agent) {
      emit({ subject: 'tetragon', check: CLUSTER_CHECKS.agent, status: 'error', reason: 'infra-agent-not-ready', evidence: agent.notReady, durationMs: Date.now() - started });
      for (const c of this.planned()) {
        if (c.check === CLUSTER_CHECKS.load && plan.policies.some((_, i) => setup.refused.has(i) && plan.subjects[i] === c.subject)) continue;
        emit({ ...c, status: 'error', reason: 'infra-agent-not-ready', evidence: { node: node.name, agent: agent.notReady.pod ?? 'no agent pod' }, durationMs: 0 });
      }
      return;
    }

    cluster.phase(node.cell, 'policies', `waiting for ${plan.policies.length - setup.refused.size} policies to settle on ${node.name}`);
    const { report, listing } = await this.loadStates(node, cluster, setup, agent.pod, plan);
    const applied: TetragonPlan = { ...plan, ...this.without(plan, setup.refused) };
    for (const check of judgeLoads(applied, 0, report, Date.now() - started, CLUSTER_CHECKS)) emit({ ...check, evidence: { ...check.evidence, node: node.name } });
    // A policy still loading when the budget ran out is the machine's (judgeLoads says so); the
    // others are judged on their events. Only an agent that never answered stops here.
    if (!report.ready) {
      for (const t of this.triggers) {
        const why = { node: node.name, why: `the agent never answered \`tetra tracingpolicy list\` (${report.waitedS} s)`, tetra: report.tetraStderr.trim().slice(0, 300), agentErrors: agentErrors(report.agentLog) };
        for (const check of [CLUSTER_CHECKS.events, POD_METADATA_CHECK, ...(this.options.restartRuntime ? [AFTER_RESTART_CHECK] : [])]) {
          emit({ subject: t.id, check, status: 'error', reason: 'infra-agent-not-ready', evidence: why, durationMs: 0, source: t.source });
        }
      }
      return;
    }

    const lostBefore = await this.agentLost(cluster, setup, agent.pod);
    const progress = (done: number) => cluster.phase(node.cell, 'triggers', `${done}/${this.triggers.length} trigger pods on ${node.name}`);
    const first = await this.round(node, cluster, setup, agent.pod, progress);
    let restart: RuntimeRestart | undefined;
    let second: Round | undefined;
    if (this.options.restartRuntime) {
      cluster.phase(node.cell, 'restart', `restarting ${this.options.restartRuntime} on ${node.name}`);
      restart = await this.restartRuntime(node, cluster, setup, agent.pod, this.options.restartRuntime);
      second = await this.round(node, cluster, setup, agent.pod, progress, 'b');
    }
    const lostAfter = await this.agentLost(cluster, setup, agent.pod);
    const agentLog = await cluster.api.logTail(setup.agent.namespace, agent.pod, 'tetragon', { lines: 2000 }).catch((e: Error) => `(the agent's log could not be read: ${e.message})`);

    // The raw evidence stays with the cell, in the files judgeNode can be replayed from.
    const dir = cluster.cellDir(node.cell);
    const file = (name: string, body: string) => writeFile(join(dir, name), body);
    const jsonl = (lines: readonly string[]) => (lines.length ? `${lines.join('\n')}\n` : '');
    await mkdir(dir, { recursive: true });
    await file(NODE_FILES.listing, listing);
    await file(NODE_FILES.events, jsonl(first.lines));
    if (second) await file(NODE_FILES.eventsAfterRestart, jsonl(second.lines));
    if ('text' in lostBefore) await file(NODE_FILES.metricsBefore, lostBefore.text);
    if ('text' in lostAfter) await file(NODE_FILES.metrics, lostAfter.text);
    await file(NODE_FILES.log, agentLog);
    const pods: TriggerPods = { stream: first.stream, before: Object.fromEntries(first.pods), ...(restart && second ? { restart, after: Object.fromEntries(second.pods) } : {}) };
    await file(NODE_FILES.pods, `${JSON.stringify(pods, null, 2)}\n`);

    // Unknown when the agent's metrics could not be read: then no failure is excused.
    const lost = 'counts' in lostBefore && 'counts' in lostAfter ? lostBetween(lostBefore.counts, lostAfter.counts) : undefined;
    const lostUnknown = [lostBefore, lostAfter].map((r) => ('error' in r ? r.error : '')).find(Boolean);
    const checks = judgeNode(applied, this.triggers, {
      node: node.name, arch: node.arch, report, first, agentLog, lost, lostUnknown, criLookup: this.options.cri === true,
      ...(restart && second ? { restart: { runtime: restart, round: second } } : {}),
    });
    for (const check of checks) emit(check);
  }

  /**
   * One round of trigger pods with the agent's event stream open around it. The gRPC
   * stream, not the export file: its deny list would hide events without a pod. A round
   * has its own stream (`tetra getevents` through an exec session): a runtime restart ends
   * exec sessions. The stream is not filtered on the agent: a CEL filter
   * (`--cel-expression`) was tried and, on v1.5.0 under TCG, stopped delivering mid-round in
   * three of six runs while the agent went on counting the pods' events; the lost-event
   * counters guard the unfiltered stream instead.
   */
  private async round(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup, agentPod: string, progress: (done: number) => void, name = ''): Promise<Round> {
    const lines: string[] = [];
    const stream = await this.eventStream(cluster, setup, agentPod, (l) => lines.push(l));
    const pods = await this.runTriggers(node, cluster, setup, agentPod, progress, name);
    const notes = await stream.close(() => lines.length);
    const events = readExport(lines.join('\n'), `${node.name}:tetra getevents`, { tolerant: true }).events;
    return { pods, lines, events, stream: notes.join('; ') };
  }

  /**
   * `tetra getevents` in the agent pod, opened again whenever it ends before it is closed.
   * `close` waits until the stream is quiet (events are exported asynchronously) and says
   * how the stream went.
   */
  private async eventStream(cluster: KubeCluster, setup: ClusterSetup, agentPod: string, onLine: (line: string) => void): Promise<{ close(count: () => number): Promise<string[]> }> {
    const open = () => cluster.api.stream(setup.agent.namespace, agentPod, 'tetragon', ['tetra', 'getevents', '-o', 'json'], onLine);
    let stream = await open();
    let closing = false;
    const ends: string[] = [];
    const watch = (async () => {
      while (!closing && ends.length <= 20) {
        await stream.whenEnded;
        if (closing) return;
        ends.push(`${new Date().toISOString()}: ${stream.stderr().trim().slice(-300) || 'closed without a word'}`);
        await new Promise((r) => setTimeout(r, 1000));
        stream = await open().catch((e: Error) => {
          ends.push(`could not open it again: ${e.message}`);
          return stream;
        });
      }
    })();
    return {
      close: async (count) => {
        let seen = -1;
        for (let i = 0; i < 40 && seen !== count(); i++) {
          seen = count();
          await new Promise((r) => setTimeout(r, 1500));
        }
        closing = true;
        await stream.stop();
        await Promise.race([watch, new Promise((r) => setTimeout(r, 2000))]);
        return ['every event the agent exports, unfiltered', ...(ends.length ? [`the stream ended ${ends.length} time(s) and was opened again (events of the gaps may be missing): ${ends.join(' | ')}`] : [])];
      },
    };
  }

  /**
   * Releases a gated trigger pod once its container runs (by the API) and the agent's CRI
   * resolution counter moved past where it stood before the pod was created (at most 60 s:
   * after a runtime restart a resolution fails, and that counts too); says what it waited for.
   */
  private async release(cluster: KubeCluster, setup: ClusterSetup, agentPod: string, name: string, atCreate: number | undefined): Promise<NonNullable<TriggerPod['released']>> {
    const { api } = cluster;
    const t0 = Date.now();
    type P = { status?: { phase?: string; containerStatuses?: { containerID?: string; state?: { running?: unknown } }[] } };
    const running = await api.waitFor(async () => {
      const p = await api.get<P>(`/api/v1/namespaces/${setup.namespace}/pods/${name}`);
      const c = p?.status?.containerStatuses?.[0];
      return c?.containerID && c.state?.running ? true : podEnded(p?.status?.phase) ? false : undefined;
    }, 120_000, 500, cluster.signal);
    if (!running) return { gate: 'the container never ran: not released' };
    const runningAfterMs = Date.now() - t0;
    let atRelease: number | undefined;
    if (atCreate !== undefined) {
      await api.waitFor(async () => ((atRelease = await this.criResolutions(cluster, setup, agentPod)) !== undefined && atRelease > atCreate ? true : undefined), 60_000, 1000, cluster.signal);
    }
    const touched = await api.tryExec(setup.namespace, name, 'trigger', ['/bin/busybox', 'touch', TRIGGER_GATE], { timeoutMs: 30_000 });
    const gate = touched.exitCode === 0 ? 'released' : `release failed (${touched.stderr.trim().slice(0, 200)}): the pod ran its steps after 300 s`;
    return { runningAfterMs, releasedAfterMs: Date.now() - t0, criResolutions: { atCreate, atRelease }, gate };
  }

  /** The agent's count of CRI resolutions tried, or undefined when its metrics cannot be read. */
  private async criResolutions(cluster: KubeCluster, setup: ClusterSetup, agentPod: string): Promise<number | undefined> {
    const r = await this.agentMetrics(cluster, setup, agentPod);
    return 'text' in r ? counterValue(r.text, CRI_RESOLUTIONS) : undefined;
  }

  /** The agent's lost-event counters, read from its metrics endpoint inside the agent pod. */
  private async agentLost(cluster: KubeCluster, setup: ClusterSetup, pod: string): Promise<{ counts: LostCounts; text: string } | { error: string }> {
    const r = await this.agentMetrics(cluster, setup, pod);
    return 'text' in r ? { counts: lostCounts(r.text), text: r.text } : r;
  }

  /** The agent's Prometheus metrics, read inside its pod (the chart's default port). */
  private async agentMetrics(cluster: KubeCluster, setup: ClusterSetup, pod: string): Promise<{ text: string } | { error: string }> {
    const url = `http://127.0.0.1:${AGENT_METRICS_PORT}/metrics`;
    const r = await cluster.api.tryExec(setup.agent.namespace, pod, 'tetragon', ['busybox', 'wget', '-qO-', url], { timeoutMs: 30_000 });
    if (r.exitCode !== 0 || !r.stdout.includes('tetragon_')) return { error: `metrics unreadable from ${url} in the agent pod: ${(r.stderr || r.stdout).trim().slice(0, 200)}` };
    return { text: r.stdout };
  }

  /**
   * Restarts the node's container runtime from a privileged pod in the host's PID namespace,
   * and records the socket's inode before and after, as the node and as the agent see it.
   */
  private async restartRuntime(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup, agentPod: string, how: 'containerd' | 'k3s'): Promise<RuntimeRestart> {
    const { api } = cluster;
    const socket = cluster.criSocket;
    const agentSees = async () => {
      // The agent image may hold no shell: busybox's stat, its error as the answer.
      const r = await api.tryExec(setup.agent.namespace, agentPod, 'tetragon', ['busybox', 'stat', '-c', '%i', socket], { timeoutMs: 30_000 });
      return (r.stdout.trim() || r.stderr.trim()).slice(0, 200);
    };
    const agentBefore = await agentSees();
    const kill = how === 'k3s' ? 'nsenter -t 1 -m -u -i -n -p -- systemctl restart k3s' : 'kill $(pidof containerd)';
    const script = [
      `S=/proc/1/root${socket}`,
      'before=$(stat -c %i "$S")',
      kill,
      // containerd unlinks its socket and its supervisor starts a new one: wait for the new inode.
      'for i in $(seq 1 240); do after=$(stat -c %i "$S" 2>/dev/null); [ -n "$after" ] && [ "$after" != "$before" ] && break; sleep 0.5; done',
      // The termination message too: the kubelet reads it from the container's files, while
      // its stdout reaches the log through containerd, which may not have reattached it yet.
      'echo "before=$before after=$after" | tee /dev/termination-log',
    ].join('\n');
    const name = `restart-runtime-${node.name.replace(/[^a-z0-9]/g, '-')}`.slice(0, 63);
    const startedAt = new Date().toISOString();
    const applied = await api.apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: setup.namespace, labels: { ...cluster.labels } },
      spec: {
        nodeName: node.name, restartPolicy: 'Never', hostPID: true, terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
        containers: [{ name: 'restart', image: TRIGGER_IMAGE, imagePullPolicy: 'Never', command: ['/bin/busybox', 'sh', '-c', `/bin/busybox --install -s /bin; ${script}`], securityContext: { privileged: true } }],
      },
    });
    if ('refused' in applied) throw new InfraError('infra-cluster-unreachable', `the runtime-restart pod was refused: ${applied.refused.message}`);
    type P = { status?: { phase?: string; containerStatuses?: { state?: { terminated?: { message?: string } } }[] } };
    let ended: P | undefined;
    const done = await api.waitFor(async () => {
      ended = await api.get<P>(`/api/v1/namespaces/${setup.namespace}/pods/${name}`);
      const phase = ended?.status?.phase;
      return podEnded(phase) ? phase : undefined;
    }, 240_000, 2000, cluster.signal);
    const said = ended?.status?.containerStatuses?.[0]?.state?.terminated?.message ?? '';
    // The kubelet reconnects to the new runtime before new pods can start, and before it
    // serves the restart pod's log again.
    await api.waitFor(async () => {
      const n = await api.get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${node.name}`);
      return isReady(n) ? true : undefined;
    }, 120_000, 2000, cluster.signal);
    const INODES = /before=(\d+) after=(\d+)/;
    let log = said;
    const m = INODES.exec(said) ?? await api.waitFor(async () => {
      log = await api.logTail(setup.namespace, name, 'restart', { lines: 5 }).catch((e: Error) => `(log unreadable: ${e.message})`);
      return INODES.exec(log) ?? undefined;
    }, 30_000, 2000, cluster.signal);
    return {
      how, socket, startedAt, endedAt: new Date().toISOString(), pod: done ?? 'never ended',
      inode: m ? { before: Number(m[1]), after: Number(m[2]) } : { unknown: `the restart pod said: ${log.trim().slice(-300) || 'nothing'}` },
      agentSees: { before: agentBefore, after: await agentSees() },
    };
  }

  /** The plan with the names and namespaces the policies go by in this cluster. */
  private namedPlan(cluster: KubeCluster, setup: ClusterSetup): TetragonPlan {
    // In a cluster bpfgate did not assemble, its objects never take a name someone else may hold.
    const names = cluster.owned ? this.plan.names : this.plan.names.map((n) => `bpfgate-${cluster.runId}-${n}`.slice(0, 253));
    const namespaces = this.plan.policies.map((p) => (p.kind === 'TracingPolicyNamespaced' ? setup.namespace : undefined));
    return { ...this.plan, names, namespaces };
  }

  /** The plan minus the policies the API server refused. */
  private without(plan: TetragonPlan, refused: ReadonlyMap<number, unknown>): Pick<TetragonPlan, 'policies' | 'subjects' | 'names' | 'namespaces' | 'bootOf'> {
    const keep = plan.policies.map((_, i) => !refused.has(i));
    const pick = <T>(xs: readonly T[]) => xs.filter((_, i) => keep[i]);
    return { policies: pick(plan.policies), subjects: pick(plan.subjects), names: pick(plan.names), namespaces: pick(plan.namespaces ?? []), bootOf: pick(plan.bootOf) };
  }

  private async setup(cluster: KubeCluster): Promise<ClusterSetup> {
    const { api } = cluster;
    const namespace = `bpfgate-${cluster.runId}`;
    const ns = await api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { ...cluster.labels } } });
    if ('refused' in ns) throw new InfraError('infra-cluster-unreachable', `cannot create the run's namespace ${namespace}: ${ns.refused.message}`);
    const setup: ClusterSetup = { namespace, agent: { namespace }, refused: new Map(), applied: [] };

    const found = await api.list<KubeObject>('v1', 'Pod', { labelSelector: AGENT_LABEL });
    if (found.length > 0) {
      setup.agent.namespace = found[0]!.metadata.namespace ?? namespace;
    } else {
      if (!this.options.chart) {
        throw new InfraError('infra-chart', `no Tetragon agent in the cluster (no pod labelled ${AGENT_LABEL}) and no chart to install one: pass --chart (a chart reference, directory or .tgz)`);
      }
      const version = this.options.bundles[0]?.version;
      const release = `bpfgate-${cluster.runId}`;
      await helmInstall({
        helm: this.options.helm,
        chart: this.options.chart,
        release,
        namespace,
        kubeconfig: cluster.kubeconfigFile,
        values: {
          tetragon: {
            ...(version ? { image: { override: tetragonTag(version) } } : {}),
            extraEnv: Object.entries(cluster.apiserverEnv).map(([name, value]) => ({ name, value })),
            enablePolicyFilter: true,
            ...(this.options.cri ? { cri: { enabled: true, socketHostPath: cluster.criSocket }, cgidmap: { enabled: true } } : {}),
          },
          // Offline: no operator image, no stdout sidecar image; the CRDs come with the chart.
          tetragonOperator: { enabled: false },
          crds: { installMethod: 'helm' },
          export: { mode: '' },
        },
        valuesFiles: this.options.valuesFiles,
      });
      setup.agent.installed = { release };
      if (this.options.cri && this.options.criMount === 'directory') await mountSocketDirectory(cluster, namespace);
      // Established, not only created: until then the API server answers 404 for its objects.
      type Crd = { status?: { conditions?: { type: string; status: string }[] } };
      const established = async (name: string) => ((await api.get<Crd>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`))?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined);
      const crd = await api.waitFor(async () => ((await established('tracingpolicies.cilium.io')) && (await established('tracingpoliciesnamespaced.cilium.io'))), 60_000, 500, cluster.signal);
      if (!crd) throw new InfraError('infra-chart', 'the chart\'s TracingPolicy CRDs (tracingpolicies.cilium.io, tracingpoliciesnamespaced.cilium.io) were not established within 60 s');
    }

    const plan = this.namedPlan(cluster, setup);
    for (const [i, p] of plan.policies.entries()) {
      const doc = asApplied(p, plan.names[i]!) as KubeObject;
      const { namespace: _dropped, ...metadata } = doc.metadata;
      const object: KubeObject = {
        ...doc,
        // kubectl drops the namespace of a cluster-scoped object; a namespaced one goes to the run's namespace.
        metadata: { ...metadata, ...(plan.namespaces?.[i] ? { namespace: plan.namespaces[i] } : {}), labels: { ...(doc.metadata.labels ?? {}), ...cluster.labels } },
      };
      const r = await api.apply(object);
      if ('refused' in r) setup.refused.set(i, { status: r.refused.status, message: r.refused.message });
      else setup.applied.push(object);
    }
    return setup;
  }

  private async teardown(cluster: KubeCluster, setup: ClusterSetup): Promise<void> {
    for (const o of setup.applied) await cluster.api.delete(o).catch(() => undefined);
    if (setup.agent.installed) {
      await helmUninstall({ helm: this.options.helm, release: setup.agent.installed.release, namespace: setup.namespace, kubeconfig: cluster.kubeconfigFile }).catch(() => undefined);
    }
    await cluster.api.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: setup.namespace } }).catch(() => undefined);
  }

  /** The node's agent pod once Ready; or the evidence of why it never got there. */
  private async agentPod(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup): Promise<{ pod: string } | { notReady: Record<string, unknown> & { pod?: string } }> {
    const { api } = cluster;
    type PodObject = KubeObject & { status?: { phase?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { name: string; restartCount: number; state?: Record<string, { reason?: string; message?: string }> }[] } };
    let last: PodObject | undefined;
    const outcome = await api.waitFor(async () => {
      const pods = await api.list<PodObject>('v1', 'Pod', { namespace: setup.agent.namespace, labelSelector: AGENT_LABEL, fieldSelector: `spec.nodeName=${node.name}` });
      last = pods[0];
      if (!last) return undefined;
      if (isReady(last)) return { ready: last.metadata.name as string | undefined };
      // A crash loop does not heal by waiting.
      const crashing = last.status?.containerStatuses?.some((s) => s.restartCount >= 3 && s.state?.waiting?.reason === 'CrashLoopBackOff');
      return crashing ? { ready: undefined } : undefined;
    }, 300_000, 2000, cluster.signal);
    if (outcome?.ready) return { pod: outcome.ready };
    if (!last) return { notReady: { node: node.name, why: `no agent pod was scheduled on ${node.name} in 300 s` } };
    const name = last.metadata.name;
    const previous = await api.logTail(setup.agent.namespace, name, 'tetragon', { previous: true, lines: 40 }).catch(() => '');
    const current = await api.logTail(setup.agent.namespace, name, 'tetragon', { lines: 40 }).catch(() => '');
    const events = await api.list<KubeObject & { reason?: string; message?: string }>('v1', 'Event' as never, { namespace: setup.agent.namespace, fieldSelector: `involvedObject.name=${name}` }).catch(() => []);
    return {
      notReady: {
        node: node.name,
        pod: name,
        phase: last.status?.phase,
        containers: last.status?.containerStatuses,
        events: events.slice(-10).map((e) => `${e.reason}: ${e.message}`),
        logTail: (previous || current).slice(-3000),
        agentErrors: agentErrors(`${previous}\n${current}`),
      },
    };
  }

  /**
   * The agent's listing, polled until every policy it holds is settled or the budget is
   * spent. `ready` means the agent answered with every policy listed (some may still be
   * loading: their checks say so); it is false only when the agent never answered.
   */
  private async loadStates(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup, pod: string, plan: TetragonPlan): Promise<{ report: AgentReport; listing: string }> {
    const accel = this.ctx.facts.accel?.accel;
    const budgetS = this.options.loadBudgetS ?? loadBudgetSeconds(plan, node.arch, accel);
    const t0 = Date.now();
    let states: PolicyLoadState[] = [];
    let listing = '';
    let stderr = '';
    const wanted = plan.names.filter((_, i) => !setup.refused.has(i));
    const list = async (): Promise<boolean> => {
      const r = await cluster.api.tryExec(setup.agent.namespace, pod, 'tetragon', ['tetra', 'tracingpolicy', 'list', '-o', 'json'], { timeoutMs: 60_000 });
      if (r.exitCode !== 0) {
        stderr = r.stderr;
        return false;
      }
      try {
        states = parsePolicyList(r.stdout);
        listing = r.stdout;
        return true;
      } catch {
        return false;
      }
    };
    // The pod runs before the agent answers (the chart has no readiness probe): its start
    // gets its own allowance, then the loads get theirs from its first answer.
    const answered = await cluster.api.waitFor(async () => ((await list()) ? true : undefined), agentStartSeconds(node.arch, accel) * 1000, 3000, cluster.signal);
    const settled = answered && await cluster.api.waitFor(async () => {
      if (!(await list())) return undefined;
      const listed = wanted.every((n) => states.some((s) => s.name === n));
      return listed && !states.some((s) => s.state === 'TP_STATE_LOADING') ? true : undefined;
    }, budgetS * 1000, 3000, cluster.signal);
    // The whole log for the loader's per-hook lines (a call skipped as not found), its tail for errors.
    const log = await cluster.api.logTail(setup.agent.namespace, pod, 'tetragon', { lines: 5000 }).catch(() => '');
    const lines = log.split('\n');
    const hookLog = lines.filter((l) => HOOK_LOG_LINE.test(l)).join('\n');
    const listed = wanted.every((n) => states.some((s) => s.name === n));
    return { report: { ready: settled === true || listed, alive: true, states, events: [], agentLog: lines.slice(-60).join('\n'), hookLog, tetraStderr: stderr, waitedS: Math.round((Date.now() - t0) / 1000) }, listing };
  }

  /** Each trigger as a pod pinned to the node, a few at a time; returns each pod as it ended. */
  private async runTriggers(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup, agentPod: string, progress: (done: number) => void, round = ''): Promise<Map<string, TriggerPod>> {
    const { api } = cluster;
    // With the CRI lookup on, the agent learns a container's cgroup only after the API
    // reports it running: a trigger that ran before would lose its pod to that race, not
    // to the socket. So each pod waits until the agent has tried to resolve it.
    const gated = this.options.cri === true;
    const out = new Map<string, TriggerPod>();
    const queue = [...this.triggers];
    const suffix = node.name.replace(/[^a-z0-9]/g, '-');
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) await one(t);
    };
    const one = async (t: Trigger): Promise<void> => {
      const name = `${t.id}`.slice(0, 38) + (round ? `-${round}` : '') + `-${suffix}`.slice(0, 22);
      const labels = { ...cluster.labels, [TRIGGER_LABEL]: t.id };
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: setup.namespace, labels },
        spec: {
          nodeName: node.name,
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 1,
          automountServiceAccountToken: false,
          ...(t.pod?.hostPID ? { hostPID: true } : {}),
          ...(t.pod?.hostNetwork ? { hostNetwork: true } : {}),
          containers: [{
            name: 'trigger',
            image: TRIGGER_IMAGE,
            imagePullPolicy: 'Never',
            command: triggerCommand(t.steps, t.cleanup, { gated }),
            env: [{ name: 'BPFGATE_MARKER', value: t.marker }, { name: 'BPFGATE_ARCH', value: node.arch }, { name: 'PATH', value: '/bin:/sbin:/usr/bin:/usr/sbin' }],
            ...(t.pod?.privileged ? { securityContext: { privileged: true } } : {}),
          }],
        },
      };
      const resolutionsAtCreate = gated ? await this.criResolutions(cluster, setup, agentPod) : undefined;
      const applied = await api.apply(pod);
      if ('refused' in applied) {
        out.set(t.id, { namespace: setup.namespace, name, labels, phase: 'Refused', image: TRIGGER_IMAGE, container: 'trigger', refused: applied.refused.message });
        return;
      }
      type PodStatus = KubeObject & { status?: { phase?: string; containerStatuses?: { image?: string; containerID?: string; state?: { running?: unknown; terminated?: { exitCode: number } } }[] } };
      let last: PodStatus | undefined;
      const released = gated ? await this.release(cluster, setup, agentPod, name, resolutionsAtCreate) : undefined;
      await api.waitFor(async () => {
        last = await api.get<PodStatus>(`/api/v1/namespaces/${setup.namespace}/pods/${name}`);
        return podEnded(last?.status?.phase) ? true : undefined;
      }, 120_000, 1000, cluster.signal);
      const status = last?.status?.containerStatuses?.[0];
      out.set(t.id, {
        namespace: setup.namespace, name, labels, container: 'trigger',
        image: status?.image ?? TRIGGER_IMAGE,
        phase: last?.status?.phase ?? 'Unknown',
        ...(status?.state?.terminated ? { exitCode: status.state.terminated.exitCode } : {}),
        ...(released ? { released } : {}),
      });
      progress(out.size);
    };
    // A gated pod waits for the agent's resolution counter, which any pod moves: one at a time.
    await Promise.all(Array.from({ length: gated ? 1 : (this.options.parallel ?? 2) }, worker));
    return out;
  }
}

