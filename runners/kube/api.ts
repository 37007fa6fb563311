/**
 * The Kubernetes API as bpfgate uses it, over one kubeconfig: server-side apply with
 * strict field validation (as `kubectl apply --server-side --validate=strict`), reads,
 * lists, deletes, waits, exec and logs. REST calls go through node's https with the
 * kubeconfig's credentials (@kubernetes/client-node's `applyToHTTPSOptions`); exec uses
 * its websocket client. Every failure is an InfraError naming the call and the
 * server's own message, except a refusal of an object (400/403/409/422), which is
 * returned to the caller as the server said it: for a policy that is a verdict.
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { PassThrough, Writable } from 'node:stream';
import { Exec, KubeConfig, type V1Status } from '@kubernetes/client-node';
import { InfraError } from '../../core/errors.js';

/** A Kubernetes object as JSON: apiVersion, kind, metadata and the rest. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

/** The server refused the object (strict validation, RBAC, a webhook): its own words. */
export interface Refusal {
  status: number;
  reason: string;
  message: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** An object (node, pod) whose Ready condition is True. */
export function isReady(o: { status?: { conditions?: { type: string; status: string }[] } } | undefined): boolean {
  return o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** A pod phase from which a pod never runs again. */
export function podEnded(phase: string | undefined): phase is 'Succeeded' | 'Failed' {
  return phase === 'Succeeded' || phase === 'Failed';
}

/** Where an object of a kind lives in the API (only the kinds bpfgate handles). */
const RESOURCES: Record<string, { path: string; namespaced: boolean }> = {
  'v1/Namespace': { path: '/api/v1/namespaces', namespaced: false },
  'v1/Pod': { path: '/api/v1/pods', namespaced: true },
  'v1/Node': { path: '/api/v1/nodes', namespaced: false },
  'v1/ConfigMap': { path: '/api/v1/configmaps', namespaced: true },
  'v1/Event': { path: '/api/v1/events', namespaced: true },
  'apps/v1/DaemonSet': { path: '/apis/apps/v1/daemonsets', namespaced: true },
  'cilium.io/v1alpha1/TracingPolicy': { path: '/apis/cilium.io/v1alpha1/tracingpolicies', namespaced: false },
  'cilium.io/v1alpha1/TracingPolicyNamespaced': { path: '/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced', namespaced: true },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': { path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', namespaced: false },
};

/** The collection URL of a kind, in a namespace when it is namespaced. */
export function collectionPath(apiVersion: string, kind: string, namespace?: string): string {
  const r = RESOURCES[`${apiVersion}/${kind}`];
  if (!r) throw new Error(`kube: bpfgate does not handle ${apiVersion} ${kind}`);
  if (!r.namespaced) return r.path;
  if (!namespace) throw new Error(`kube: ${kind} is namespaced: a namespace is needed`);
  const [prefix, plural] = [r.path.slice(0, r.path.lastIndexOf('/')), r.path.slice(r.path.lastIndexOf('/') + 1)];
  return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
}

export function objectPath(o: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): string {
  return `${collectionPath(o.apiVersion, o.kind, o.metadata.namespace)}/${encodeURIComponent(o.metadata.name)}`;
}

export class KubeApi {
  readonly config: KubeConfig;
  /** Where the kubeconfig came from, for messages. */
  readonly source: string;

  private constructor(config: KubeConfig, source: string) {
    this.config = config;
    this.source = source;
  }

  static fromFile(file: string): KubeApi {
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new InfraError('infra-cluster-unreachable', `cannot read the kubeconfig ${file}: ${(err as Error).message}`, err);
    }
    return new KubeApi(kc, file);
  }

  static fromString(text: string, source: string): KubeApi {
    const kc = new KubeConfig();
    kc.loadFromString(text);
    return new KubeApi(kc, source);
  }

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '(no server)';
  }

  /** One REST call; JSON in and out. Network trouble is an InfraError; any HTTP status is returned. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<ApiResponse<T>> {
    const url = new URL(path, this.server);
    const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: { accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(opts);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) opts.headers = { ...opts.headers, 'content-type': contentType, 'content-length': Buffer.byteLength(payload) };
    return new Promise((resolve, reject) => {
      const req = httpsRequest(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON (a plain-text error): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new InfraError('infra-cluster-unreachable', `${method} ${url.href}: ${err.message}`, err)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** A call that must succeed (2xx), or an InfraError with the server's message. */
  async must<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const r = await this.request<T>(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) {
      throw new InfraError('infra-cluster-unreachable', `${method} ${path}: HTTP ${r.status}: ${statusMessage(r.body)}`);
    }
    return r.body;
  }

  /**
   * Server-side apply, strict: an unknown or duplicate field is refused as the API server
   * refuses it for `kubectl apply --server-side --validate=strict`. A refusal is returned.
   */
  async apply(o: KubeObject, fieldManager = 'bpfgate'): Promise<{ applied: KubeObject } | { refused: Refusal }> {
    const path = `${objectPath(o)}?fieldManager=${fieldManager}&fieldValidation=Strict&force=true`;
    const r = await this.request<KubeObject>('PATCH', path, o, 'application/apply-patch+yaml');
    if (r.status >= 200 && r.status <= 299) return { applied: r.body };
    if ([400, 403, 409, 422].includes(r.status)) return { refused: { status: r.status, reason: statusReason(r.body), message: statusMessage(r.body) } };
    throw new InfraError('infra-cluster-unreachable', `apply ${o.kind} ${o.metadata.name}: HTTP ${r.status}: ${statusMessage(r.body)}`);
  }

  async get<T = KubeObject>(path: string): Promise<T | undefined> {
    const r = await this.request<T>('GET', path);
    if (r.status === 404) return undefined;
    if (r.status < 200 || r.status > 299) throw new InfraError('infra-cluster-unreachable', `GET ${path}: HTTP ${r.status}: ${statusMessage(r.body)}`);
    return r.body;
  }

  async list<T = KubeObject>(apiVersion: string, kind: string, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {}): Promise<T[]> {
    const query = new URLSearchParams();
    if (opts.labelSelector) query.set('labelSelector', opts.labelSelector);
    if (opts.fieldSelector) query.set('fieldSelector', opts.fieldSelector);
    const base = opts.namespace || !RESOURCES[`${apiVersion}/${kind}`]?.namespaced ? collectionPath(apiVersion, kind, opts.namespace) : RESOURCES[`${apiVersion}/${kind}`]!.path;
    const body = await this.must<{ items: T[] }>('GET', `${base}${query.size ? `?${query}` : ''}`);
    // A list's items carry no apiVersion and kind: give them back, so each can be written again.
    return (body.items ?? []).map((item) => ({ apiVersion, kind, ...item }));
  }

  /** Deletes an object; one that is already gone is fine. */
  async delete(o: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>, gracePeriodSeconds?: number): Promise<void> {
    const query = gracePeriodSeconds === undefined ? '' : `?gracePeriodSeconds=${gracePeriodSeconds}`;
    const r = await this.request('DELETE', `${objectPath(o)}${query}`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
    if (r.status !== 404 && (r.status < 200 || r.status > 299)) {
      throw new InfraError('infra-cluster-unreachable', `delete ${o.kind} ${o.metadata.name}: HTTP ${r.status}: ${statusMessage(r.body)}`);
    }
  }

  /** Polls `probe` until it returns a value, or the deadline: then undefined. */
  async waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500, signal?: AbortSignal): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) return undefined;
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** Runs a command in a container and collects its output and exit code. */
  async exec(namespace: string, pod: string, container: string, command: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<ExecResult> {
    const stdout = collector();
    const stderr = collector();
    const stdin = opts.stdin === undefined ? null : PassThrough.from([opts.stdin]);
    let status: V1Status | undefined;
    const ws = await new Exec(this.config)
      .exec(namespace, pod, container, command, stdout.stream, stderr.stream, stdin, false, (s) => (status = s))
      .catch((err: unknown) => {
        throw new InfraError('infra-cluster-unreachable', `exec in ${namespace}/${pod}/${container}: ${(err as Error).message ?? String(err)}`, err);
      });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ws.close();
        resolve();
      }, opts.timeoutMs ?? 120_000);
      ws.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { exitCode: exitCodeOf(status), stdout: stdout.text(), stderr: stderr.text() };
  }

  /**
   * Starts a long-running command in a container (an event stream) and hands every
   * stdout line to `onLine` until `stop()`.
   */
  async stream(namespace: string, pod: string, container: string, command: string[], onLine: (line: string) => void): Promise<{ stop(): Promise<void>; stderr(): string; ended(): boolean; whenEnded: Promise<void> }> {
    let rest = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        rest += chunk.toString('utf8');
        const lines = rest.split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) onLine(line);
        done();
      },
    });
    const err = collector();
    const ws = await new Exec(this.config).exec(namespace, pod, container, command, out, err.stream, null, false);
    let ended = false;
    const closed = new Promise<void>((resolve) => ws.on('close', () => { ended = true; resolve(); }));
    return {
      ended: () => ended,
      whenEnded: closed,
      stop: async () => {
        ws.close();
        await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
        if (rest.trim()) onLine(rest);
      },
      stderr: () => err.text(),
    };
  }

  /** An exec whose failure to start is an answer, not an error: exit code -1, the reason on stderr. */
  async tryExec(namespace: string, pod: string, container: string, command: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<ExecResult> {
    return this.exec(namespace, pod, container, command, opts).catch((e: Error) => ({ exitCode: -1, stdout: '', stderr: e.message }));
  }

  /** The last lines of a container's log (current or previous instance). */
  async logTail(namespace: string, pod: string, container: string, opts: { previous?: boolean; lines?: number } = {}): Promise<string> {
    const q = new URLSearchParams({ container, tailLines: String(opts.lines ?? 50), ...(opts.previous ? { previous: 'true' } : {}) });
    const r = await this.request<string>('GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log?${q}`);
    return typeof r.body === 'string' ? r.body : statusMessage(r.body);
  }
}

function collector(): { stream: Writable; text(): string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(Buffer.from(chunk));
        done();
      },
    }),
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

/** The exit code an exec's final status carries (Success = 0). */
function exitCodeOf(status: V1Status | undefined): number {
  if (!status) return -1;
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message ? Number(cause.message) : 1;
}

function statusMessage(body: unknown): string {
  if (typeof body === 'string') return body.trim().slice(0, 2000);
  const b = body as { message?: string } | undefined;
  return b?.message ?? JSON.stringify(body)?.slice(0, 2000) ?? '';
}

function statusReason(body: unknown): string {
  return (body as { reason?: string } | undefined)?.reason ?? 'Invalid';
}
