/**
 * The certificates of one assembled cluster, made per run with openssl (the distro's
 * tool): one CA, the apiserver's serving certificate (for the host's loopback and for
 * 10.0.2.2, the address nodes on QEMU user networking use), client certificates for the
 * admin, the controller-manager, the scheduler and the apiserver's calls to kubelets,
 * each node's kubelet client and serving certificates, and the service-account key.
 * ECDSA P-256 keys: as good as RSA here and generated in milliseconds. Valid for two
 * days: a run never outlives them, and a leaked directory is useless soon.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertToolOk, runHostTool } from '../qemu/host-tools.js';

export interface NodeIdentity {
  /** Node name, a loopback address: the apiserver reaches the kubelet there (findings: option A). */
  name: string;
}

export interface ClusterPki {
  dir: string;
  ca: { cert: string; key: string };
  apiserver: { cert: string; key: string };
  apiserverKubeletClient: { cert: string; key: string };
  admin: { cert: string; key: string };
  controllerManager: { cert: string; key: string };
  scheduler: { cert: string; key: string };
  serviceAccount: { key: string; pub: string };
  nodes: Map<string, { client: { cert: string; key: string }; serving: { cert: string; key: string } }>;
}

const DAYS = '2';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[], what: string): Promise<void> {
  assertToolOk(await runHostTool('openssl', args, { providedBy: 'openssl' }), 'infra-tool-missing', `openssl (${what})`);
}

async function leaf(
  dir: string,
  name: string,
  ca: { cert: string; key: string },
  subject: string,
  usage: 'clientAuth' | 'serverAuth',
  sans: string[] = [],
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usage}`,
      ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
    ].join('\n') + '\n',
  );
  await openssl(['req', '-new', ...EC, '-keyout', key, '-out', csr, '-subj', subject], name);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', DAYS, '-extfile', ext], name);
  return { cert, key };
}

/** Every certificate the cluster needs, under `dir`. */
export async function makePki(dir: string, nodes: readonly NodeIdentity[], apiserverAddresses: readonly string[]): Promise<ClusterPki> {
  await mkdir(dir, { recursive: true });
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await openssl(['req', '-x509', ...EC, '-keyout', ca.key, '-out', ca.cert, '-days', DAYS, '-subj', '/CN=bpfgate-cluster-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'], 'ca');
  const apiserverSans = [
    ...apiserverAddresses.map((a) => `IP:${a}`),
    'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local',
  ];
  const saKey = join(dir, 'sa.key');
  const saPub = join(dir, 'sa.pub');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', saKey], 'service-account key');
  await openssl(['ec', '-in', saKey, '-pubout', '-out', saPub], 'service-account public key');
  const pki: ClusterPki = {
    dir,
    ca,
    apiserver: await leaf(dir, 'apiserver', ca, '/CN=kube-apiserver', 'serverAuth', apiserverSans),
    apiserverKubeletClient: await leaf(dir, 'apiserver-kubelet-client', ca, '/O=system:masters/CN=kube-apiserver-kubelet-client', 'clientAuth'),
    admin: await leaf(dir, 'admin', ca, '/O=system:masters/CN=bpfgate-admin', 'clientAuth'),
    controllerManager: await leaf(dir, 'controller-manager', ca, '/CN=system:kube-controller-manager', 'clientAuth'),
    scheduler: await leaf(dir, 'scheduler', ca, '/CN=system:kube-scheduler', 'clientAuth'),
    serviceAccount: { key: saKey, pub: saPub },
    nodes: new Map(),
  };
  for (const node of nodes) {
    pki.nodes.set(node.name, {
      client: await leaf(dir, `kubelet-${node.name}`, ca, `/O=system:nodes/CN=system:node:${node.name}`, 'clientAuth'),
      serving: await leaf(dir, `kubelet-serving-${node.name}`, ca, `/CN=${node.name}`, 'serverAuth', [`IP:${node.name}`, 'IP:10.0.2.15', 'DNS:localhost']),
    });
  }
  return pki;
}

/** A kubeconfig with everything embedded, for a user whose client certificate is `who`. */
export async function kubeconfig(server: string, ca: string, who: { cert: string; key: string }, user: string): Promise<string> {
  const b64 = async (f: string) => (await readFile(f)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: bpfgate`,
    `  cluster: {server: "${server}", certificate-authority-data: ${await b64(ca)}}`,
    'users:',
    `- name: ${user}`,
    `  user: {client-certificate-data: ${await b64(who.cert)}, client-key-data: ${await b64(who.key)}}`,
    'contexts:',
    `- name: bpfgate`,
    `  context: {cluster: bpfgate, user: ${user}}`,
    'current-context: bpfgate',
    '',
  ].join('\n');
}
