/**
 * A started Kubernetes platform, whatever assembled or found the cluster: it runs the
 * sessions of each cell on its node, charges what they planned and never answered to
 * the infrastructure, and on disposal runs the suites' shared teardowns (newest first:
 * what bpfgate created goes away) before the platform's own stop (nodes, control plane).
 */
import { InfraError } from '../../core/errors.js';
import type { CellSink, DescribedCell, PlatformName, StartedPlatform, SuiteSession } from '../../core/platform.js';
import type { Reason } from '../../core/reasons.js';
import type { KubeCluster, KubeNode, KubeSession } from './session.js';

export interface ClusterParts {
  cluster: Omit<KubeCluster, 'shared'>;
  /** Node of each cell id; a cell missing here never became a node (`unready` says why). */
  nodes: Map<string, KubeNode>;
  /** Cells whose node never got ready, with the reason and the evidence. */
  unready: Map<string, { reason: Reason; evidence: Record<string, unknown> }>;
  /** The platform's own stop, after every teardown. */
  stop(): Promise<void>;
}

/** The platforms whose cells are Kubernetes nodes. */
export type KubePlatformName = Extract<PlatformName, 'qemu-cluster' | 'kubeconfig'>;

export class StartedCluster<P extends KubePlatformName> implements StartedPlatform<P> {
  private readonly shares = new Map<string, Promise<unknown>>();
  private readonly teardowns: (() => Promise<void>)[] = [];
  readonly cluster: KubeCluster;

  constructor(private readonly parts: ClusterParts) {
    this.cluster = { ...parts.cluster, shared: (key, setup, teardown) => this.shared(key, setup, teardown) };
  }

  private shared<T>(key: string, setup: () => Promise<T>, teardown?: (value: T) => Promise<void>): Promise<T> {
    let value = this.shares.get(key) as Promise<T> | undefined;
    if (!value) {
      value = setup();
      this.shares.set(key, value);
      if (teardown) this.teardowns.push(async () => teardown(await value!));
    }
    return value;
  }

  async run(described: DescribedCell, sessions: SuiteSession<KubeSession>[], sink: CellSink): Promise<{ ok: boolean }> {
    const cell = described.cell.id;
    const charge = (reason: Reason, evidence: Record<string, unknown>) => {
      for (const { suite, lane, session } of sessions) {
        for (const p of session.planned()) {
          if (!sink.done(suite, lane, p.subject, p.check)) sink.record(suite, lane, { ...p, status: 'error', reason, evidence, durationMs: 0 });
        }
      }
    };
    if (described.facts.error) {
      charge(described.facts.error.reason, { error: described.facts.error.message });
      return { ok: false };
    }
    const unready = this.parts.unready.get(cell);
    const node = this.parts.nodes.get(cell);
    if (unready || !node) {
      charge(unready?.reason ?? 'infra-node-not-ready', unready?.evidence ?? { why: 'the node never joined the cluster' });
      return { ok: false };
    }
    let ok = true;
    for (const { suite, lane, session } of sessions) {
      const written = new Set<string>();
      const emit = (draft: Parameters<CellSink['record']>[2]) => {
        if (this.cluster.signal.aborted) return;
        written.add(`${draft.subject}\u0000${draft.check}`);
        if (draft.status === 'error') ok = false;
        if (!sink.done(suite, lane, draft.subject, draft.check)) sink.record(suite, lane, draft);
      };
      let failure: unknown;
      try {
        await sink.slot(() => session.run(node, this.cluster, emit));
      } catch (err) {
        failure = err;
      }
      if (this.cluster.signal.aborted) return { ok: false };
      const reason: Reason = failure instanceof InfraError && failure.code.startsWith('infra-') ? (failure.code as Reason) : 'infra-cluster-unreachable';
      for (const p of session.planned()) {
        if (written.has(`${p.subject}\u0000${p.check}`) || sink.done(suite, lane, p.subject, p.check)) continue;
        ok = false;
        sink.record(suite, lane, {
          ...p, status: 'error', reason,
          evidence: failure ? { error: failure instanceof Error ? failure.message : String(failure) } : { missing: 'the session never answered this check' },
          durationMs: 0,
        });
      }
      if (failure && !(failure instanceof InfraError)) throw failure;
    }
    return { ok };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const teardown of this.teardowns.reverse()) {
      await teardown().catch(() => undefined);
    }
    await this.parts.stop();
  }
}
