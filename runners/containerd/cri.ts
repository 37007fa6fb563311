/**
 * A real CRI client: @grpc/grpc-js with the CRI API's own api.proto, taken from Debian's
 * golang-github-kubernetes-cri-api-dev (trixie) through bpfgate's private apt and unpacked
 * into the cache at run time (never committed). The gogoproto import and options are
 * stripped (protobufjs does not have gogo.proto, and they only steer Go code generation).
 *
 * Invariants: every call has a deadline and fails fast when nothing listens (no
 * waitForReady), so a dead socket answers "connection refused" at once; a failed call
 * rejects with a `CriCallError` that keeps gRPC's code and text (the evidence). Messages use
 * the proto's own snake_case field names.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomically } from '../../core/atomic-write.js';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { cacheDir } from '../../core/cache.js';
import { InfraError } from '../../core/errors.js';
import { privateApt, type DebArch } from '../qemu/apt.js';
import { assertToolOk, runHostTool } from '../qemu/host-tools.js';

/** Where the CRI API's .proto comes from. */
export const CRI_API_PACKAGE = { package: 'golang-github-kubernetes-cri-api-dev', suite: 'trixie' } as const;
const PROTO_IN_PACKAGE = 'usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto';

/** api.proto without gogoproto: its import, its file options and any field option that names it (pure). */
export function stripGogoproto(text: string): string {
  return text
    .split('\n')
    .filter((line) => !/^\s*import\s+"github\.com\/gogo\/protobuf\/gogoproto\/gogo\.proto";/.test(line))
    .filter((line) => !/^\s*option\s+\(gogoproto\.[^)]*\)/.test(line))
    .map((line) => line.replace(/\s*\[\s*\(gogoproto\.[^\]]*\]/g, ''))
    .join('\n');
}

/** The stripped api.proto in the cache (downloaded and unpacked the first time), and the package version it came from. */
export async function criApiProto(opts: { debArch?: DebArch; onLog?: (line: string) => void } = {}): Promise<{ path: string; version: string }> {
  const apt = await privateApt(opts.onLog ? { onLog: opts.onLog } : {});
  const pkg = await apt.resolve(CRI_API_PACKAGE.package, CRI_API_PACKAGE.suite, opts.debArch ?? 'amd64');
  const dir = await cacheDir('cri-api', pkg.version);
  const path = join(dir, 'api.proto');
  if (existsSync(path)) return { path, version: pkg.version };
  const deb = await apt.download(pkg);
  const work = await mkdtemp(join(dir, '.unpack-'));
  try {
    const r = await runHostTool('dpkg-deb', ['-x', deb, work], { providedBy: 'dpkg' });
    assertToolOk(r, 'infra-download', `dpkg-deb -x ${deb}`);
    const source = join(work, PROTO_IN_PACKAGE);
    if (!existsSync(source)) throw new InfraError('infra-download', `${pkg.package} ${pkg.version} has no ${PROTO_IN_PACKAGE}`);
    await writeAtomically(path, stripGogoproto(await readFile(source, 'utf8')));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { path, version: pkg.version };
}

// --- the messages bpfgate sends and reads (a subset of runtime.v1) -----------------------

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface Mount {
  container_path: string;
  host_path: string;
  readonly?: boolean;
}

export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  labels?: Record<string, string>;
  dns_config?: { servers: string[]; searches?: string[]; options?: string[] };
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: { network?: 'POD' | 'CONTAINER' | 'NODE'; pid?: 'POD' | 'CONTAINER' | 'NODE'; ipc?: 'POD' | 'CONTAINER' | 'NODE' } };
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  mounts?: Mount[];
  labels?: Record<string, string>;
  linux?: Record<string, unknown>;
}

export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string };
  state: string;
}

export interface PodSandbox {
  id: string;
  metadata: { name: string };
  state: string;
}

export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exit_code: number;
}

/** A CRI call that failed: gRPC's status code and its text, as the evidence shows them. */
export class CriCallError extends Error {
  readonly method: string;
  readonly grpcCode: number | undefined;
  readonly details: string;
  constructor(method: string, cause: grpc.ServiceError | Error) {
    const code = (cause as grpc.ServiceError).code;
    super(`${method}: ${cause.message}`, { cause });
    this.name = 'CriCallError';
    this.method = method;
    this.grpcCode = typeof code === 'number' ? code : undefined;
    // grpc-js ends some texts with an empty "Resolution note: ".
    this.details = ((cause as grpc.ServiceError).details ?? cause.message).replace(/\.?\s*Resolution note:\s*$/, '');
  }

  /** `UNAVAILABLE (14): <details>`, the way the evidence shows a failed call. */
  describe(): string {
    const name = this.grpcCode === undefined ? undefined : (grpc.status as unknown as Record<number, string>)[this.grpcCode];
    return `${name ?? 'error'}${this.grpcCode === undefined ? '' : ` (${this.grpcCode})`}: ${this.details}`;
  }
}

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

const definitions = new Map<string, grpc.ServiceClientConstructor>();

function runtimeService(protoPath: string): grpc.ServiceClientConstructor {
  let ctor = definitions.get(protoPath);
  if (!ctor) {
    const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
    ctor = pkg.runtime.v1.RuntimeService;
    definitions.set(protoPath, ctor);
  }
  return ctor;
}

/** A CRI RuntimeService client on one unix socket path (as the host sees it). */
export class CriClient implements Disposable {
  readonly socket: string;
  private readonly client: grpc.Client;

  constructor(protoPath: string, socket: string, private readonly deadlineMs = 10_000) {
    this.socket = socket;
    const Service = runtimeService(protoPath);
    this.client = new Service(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<T>(method: string, req: unknown, deadlineMs = this.deadlineMs): Promise<T> {
    const fn = (this.client as unknown as Record<string, Unary>)[method];
    if (!fn) return Promise.reject(new Error(`the CRI API has no ${method}`));
    return new Promise<T>((resolve, reject) => {
      fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(new CriCallError(method, err)) : resolve(res as T)));
    });
  }

  version(deadlineMs?: number): Promise<VersionResponse> {
    return this.call('Version', { version: 'v1' }, deadlineMs);
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    return (await this.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config })).pod_sandbox_id;
  }

  stopPodSandbox(id: string): Promise<void> {
    return this.call('StopPodSandbox', { pod_sandbox_id: id });
  }

  removePodSandbox(id: string): Promise<void> {
    return this.call('RemovePodSandbox', { pod_sandbox_id: id });
  }

  async listPodSandbox(): Promise<PodSandbox[]> {
    return (await this.call<{ items: PodSandbox[] }>('ListPodSandbox', {})).items;
  }

  async createContainer(podId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return (await this.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: sandboxConfig })).container_id;
  }

  startContainer(id: string): Promise<void> {
    return this.call('StartContainer', { container_id: id });
  }

  async listContainers(): Promise<Container[]> {
    return (await this.call<{ containers: Container[] }>('ListContainers', {})).containers;
  }

  /** The container's init pid, from the runtime's verbose status. */
  async containerPid(id: string): Promise<number> {
    const res = await this.call<{ info: Record<string, string> }>('ContainerStatus', { container_id: id, verbose: true });
    const pid = (JSON.parse(res.info.info ?? '{}') as { pid?: number }).pid;
    if (typeof pid !== 'number' || pid <= 0) throw new Error(`ContainerStatus of ${id} names no pid`);
    return pid;
  }

  /** Runs a command in the container and waits (at most `timeoutSec`) for its exit. */
  async execSync(id: string, cmd: string[], timeoutSec = 10): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const res = await this.call<ExecSyncResponse>('ExecSync', { container_id: id, cmd, timeout: timeoutSec }, (timeoutSec + 5) * 1000);
    return { exitCode: res.exit_code, stdout: Buffer.from(res.stdout).toString(), stderr: Buffer.from(res.stderr).toString() };
  }

  close(): void {
    this.client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
