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
import type { CheckDraft, PlannedCheck } from '../../core/check.js';
import { InfraError } from '../../core/errors.js';
import type { CellContext } from '../../core/suite.js';
import type { Arch } from '../../matrix/cell.js';
import type { KubeObject } from '../../runners/kube/api.js';
import { helmInstall, helmUninstall } from '../../runners/kube/helm.js';
import type { KubeCluster, KubeNode, KubeSession } from '../../runners/kube/session.js';
import { bundleFor, type TetragonBundle } from '../tetragon/bundle.js';
import { readExport } from '../tetragon/events.js';
import { agentErrors, parsePolicyList, type PolicyLoadState } from '../tetragon/load-state.js';
import { judgeLoads, judgeTriggers, type AgentReport, type CheckNames } from '../tetragon/judge.js';
import { asApplied, planTetragonCell, type TetragonPlan } from '../tetragon/plan.js';
import type { Trigger } from '../triggers/model.js';
import { tetragonImage, triggerCommand, triggerImage } from './images.js';
import { judgePodMetadata, type TriggerPod } from './pod.js';

export const CLUSTER_CHECKS: CheckNames = { load: 'cluster:load', events: 'cluster:events', fired: 'cluster:fired', agent: 'cluster:agent' };
export const POD_METADATA_CHECK = 'pod-metadata';

/** The tags the images go by on every node, whatever their arch (each node holds its own arch's). */
export const TRIGGER_IMAGE = 'localhost/bpfgate/trigger:1';
export const tetragonTag = (version: string): string => `localhost/bpfgate/tetragon:${version}`;

const AGENT_LABEL = 'app.kubernetes.io/name=tetragon';

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
      ]),
    ];
  }

  async nodeImages(arch: Arch): Promise<string[]> {
    const out = [(await triggerImage(arch, TRIGGER_IMAGE)).file];
    const bundle = bundleFor(this.options.bundles, arch);
    if (bundle) out.push((await tetragonImage(bundle, tetragonTag(bundle.version))).file);
    return out;
  }

  async run(node: KubeNode, cluster: KubeCluster, emit: (draft: CheckDraft) => void): Promise<void> {
    const started = Date.now();
    const setup = await cluster.shared('cluster-suite', () => this.setup(cluster), (s) => this.teardown(cluster, s));
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

    const report = await this.loadStates(node, cluster, setup, agent.pod, plan);
    const applied: TetragonPlan = { ...plan, ...this.without(plan, setup.refused) };
    for (const check of judgeLoads(applied, 0, report, Date.now() - started, CLUSTER_CHECKS)) emit({ ...check, evidence: { ...check.evidence, node: node.name } });
    if (!report.ready) {
      for (const t of this.triggers) {
        emit({ subject: t.id, check: CLUSTER_CHECKS.events, status: 'error', reason: 'infra-agent-not-ready', evidence: { node: node.name, why: 'the agent never settled the policies', agentErrors: agentErrors(report.agentLog) }, durationMs: 0, source: t.source });
        emit({ subject: t.id, check: POD_METADATA_CHECK, status: 'error', reason: 'infra-agent-not-ready', evidence: { node: node.name }, durationMs: 0, source: t.source });
      }
      return;
    }

    // The gRPC stream, not the export file: its deny list would hide events without a pod.
    const lines: string[] = [];
    const stream = await cluster.api.stream(setup.agent.namespace, agent.pod, 'tetragon', ['tetra', 'getevents', '-o', 'json'], (l) => lines.push(l));
    const pods = await this.runTriggers(node, cluster, setup);
    // Events are exported asynchronously: wait until the stream is quiet.
    let seen = -1;
    for (let i = 0; i < 40 && seen !== lines.length; i++) {
      seen = lines.length;
      await new Promise((r) => setTimeout(r, 1500));
    }
    await stream.stop();
    const events = readExport(lines.join('\n'), `${node.name}:tetra getevents`, { tolerant: true }).events;
    const reports: AgentReport[] = [{ ...report, events }];
    for (const check of judgeTriggers(applied, this.triggers, reports, node.arch, CLUSTER_CHECKS)) {
      const pod = pods.get(check.subject);
      emit({ ...check, evidence: { ...check.evidence, node: node.name, ...(pod ? { pod: `${pod.namespace}/${pod.name}`, podPhase: pod.phase } : {}) } });
    }
    for (const t of this.triggers) emit({ ...judgePodMetadata(t, pods.get(t.id), events), source: t.source });
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
      const crd = await api.waitFor(async () => ((await api.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tracingpolicies.cilium.io')) ? true : undefined), 60_000, 500, cluster.signal);
      if (!crd) throw new InfraError('infra-chart', 'the chart installed no TracingPolicy CRD (tracingpolicies.cilium.io) within 60 s');
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
      if (last.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return { ready: last.metadata.name as string | undefined };
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

  /** The agent's listing, polled until every policy it holds is settled or the budget is spent. */
  private async loadStates(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup, pod: string, plan: TetragonPlan): Promise<AgentReport> {
    const budgetS = this.options.loadBudgetS ?? 60 + 25 * plan.policies.length;
    const t0 = Date.now();
    let states: PolicyLoadState[] = [];
    let stderr = '';
    const wanted = plan.names.filter((_, i) => !setup.refused.has(i));
    const settled = await cluster.api.waitFor(async () => {
      const r = await cluster.api.exec(setup.agent.namespace, pod, 'tetragon', ['tetra', 'tracingpolicy', 'list', '-o', 'json'], { timeoutMs: 60_000 }).catch((e: Error) => ({ exitCode: -1, stdout: '', stderr: e.message }));
      if (r.exitCode !== 0) {
        stderr = r.stderr;
        return undefined;
      }
      try {
        states = parsePolicyList(r.stdout);
      } catch {
        return undefined;
      }
      const listed = wanted.every((n) => states.some((s) => s.name === n));
      return listed && !states.some((s) => s.state === 'TP_STATE_LOADING') ? true : undefined;
    }, budgetS * 1000, 3000, cluster.signal);
    const log = await cluster.api.logTail(setup.agent.namespace, pod, 'tetragon', { lines: 60 }).catch(() => '');
    return { ready: settled === true, alive: true, states, events: [], agentLog: log, tetraStderr: stderr, waitedS: Math.round((Date.now() - t0) / 1000) };
  }

  /** Each trigger as a pod pinned to the node, a few at a time; returns each pod as it ended. */
  private async runTriggers(node: KubeNode, cluster: KubeCluster, setup: ClusterSetup): Promise<Map<string, TriggerPod>> {
    const { api } = cluster;
    const out = new Map<string, TriggerPod>();
    const queue = [...this.triggers];
    const suffix = node.name.replace(/[^a-z0-9]/g, '-');
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        const name = `${t.id}`.slice(0, 40) + `-${suffix}`.slice(0, 22);
        const labels = { ...cluster.labels, 'bpfgate.dev/trigger': t.id };
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
              command: triggerCommand(t.steps, t.cleanup),
              env: [{ name: 'BPFGATE_MARKER', value: t.marker }, { name: 'BPFGATE_ARCH', value: node.arch }, { name: 'PATH', value: '/bin:/sbin:/usr/bin:/usr/sbin' }],
              ...(t.pod?.privileged ? { securityContext: { privileged: true } } : {}),
            }],
          },
        };
        const applied = await api.apply(pod);
        if ('refused' in applied) {
          out.set(t.id, { namespace: setup.namespace, name, labels, phase: 'Refused', image: TRIGGER_IMAGE, container: 'trigger', refused: applied.refused.message });
          continue;
        }
        type PodStatus = KubeObject & { status?: { phase?: string; containerStatuses?: { image?: string; state?: { terminated?: { exitCode: number } } }[] } };
        let last: PodStatus | undefined;
        await api.waitFor(async () => {
          last = await api.get<PodStatus>(`/api/v1/namespaces/${setup.namespace}/pods/${name}`);
          return last?.status?.phase === 'Succeeded' || last?.status?.phase === 'Failed' ? true : undefined;
        }, 120_000, 1000, cluster.signal);
        const status = last?.status?.containerStatuses?.[0];
        out.set(t.id, {
          namespace: setup.namespace, name, labels, container: 'trigger',
          image: status?.image ?? TRIGGER_IMAGE,
          phase: last?.status?.phase ?? 'Unknown',
          ...(status?.state?.terminated ? { exitCode: status.state.terminated.exitCode } : {}),
        });
      }
    };
    await Promise.all(Array.from({ length: this.options.parallel ?? 2 }, worker));
    return out;
  }
}

