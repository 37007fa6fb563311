/**
 * The cluster lane for real, through the CLI as a user runs it: an assembled cluster with
 * an x86_64-6.12 node, Tetragon installed by its chart, the CRI lookup on with the socket at
 * K3s's path, trigger pods, containerd restarted, trigger pods again: the K3s socket bug
 * (issue "cri-socket-stale", level 2). And the kubeconfig platform against a cluster that
 * runs on its own.
 *
 * Nothing of it can be installed here: Kubernetes binaries (BPFGATE_KUBERNETES), a Tetragon
 * release bundle for amd64 (BPFGATE_TETRAGON_BUNDLE), Tetragon's chart (BPFGATE_TETRAGON_CHART:
 * a directory or .tgz), helm (BPFGATE_HELM or on PATH), a running cluster's kubeconfig
 * (BPFGATE_KUBECONFIG). Each test skips naming what it lacks, and runs where it is given.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfgate, readResults, tempOut } from '../support/cli.js';
import { CRD_DIR, EXAMPLES, PROJECT_ROOT } from '../support/shared.js';

const onPath = (bin: string) => (process.env.PATH ?? '').split(delimiter).map((d) => join(d, bin)).find(existsSync);
const given = {
  BPFGATE_KUBERNETES: process.env.BPFGATE_KUBERNETES,
  BPFGATE_TETRAGON_BUNDLE: process.env.BPFGATE_TETRAGON_BUNDLE,
  BPFGATE_TETRAGON_CHART: process.env.BPFGATE_TETRAGON_CHART,
  BPFGATE_HELM: process.env.BPFGATE_HELM ?? onPath('helm'),
  BPFGATE_KUBECONFIG: process.env.BPFGATE_KUBECONFIG,
};
const lacking = (...names: (keyof typeof given)[]) => names.filter((n) => !given[n] || !existsSync(given[n]!));
const title = (what: string, missing: string[]) => (missing.length ? `${what} (skipped: set ${missing.join(', ')})` : what);

const CATALOGUE = join(PROJECT_ROOT, 'suites', 'triggers', 'catalogue');
const TRIGGERS = ['t1059-004-unix-shell', 't1059-instrumented-interpreter'].map((t) => join(CATALOGUE, `${t}.yaml`)).join(',');

const assembled = lacking('BPFGATE_KUBERNETES', 'BPFGATE_TETRAGON_BUNDLE', 'BPFGATE_TETRAGON_CHART', 'BPFGATE_HELM');
describe.skipIf(assembled.length > 0)(title('the K3s socket bug on an assembled x86_64-6.12 node', assembled), () => {
  it('gives a pod its metadata, loses it for the pod started after containerd restarts, and says cri-socket-stale', async () => {
    const out = tempOut('cluster-lane');
    const run = await bpfgate([
      'run', '--matrix', join(PROJECT_ROOT, 'matrix', 'cluster.yaml'), '--cells', 'x86_64-6.12', '--suite', 'cluster',
      '--kubernetes', given.BPFGATE_KUBERNETES!, '--tetragon', given.BPFGATE_TETRAGON_BUNDLE!, '--chart', given.BPFGATE_TETRAGON_CHART!, '--helm', given.BPFGATE_HELM!,
      '--schema', CRD_DIR, '--policies', join(EXAMPLES, 'lsm_bprm_check.yaml'), '--triggers', TRIGGERS,
      '--cri', '--cri-socket', '/run/k3s/containerd/containerd.sock', '--restart-runtime', 'containerd',
      '--out', out,
    ]);
    expect(run.stderr).not.toMatch(/internal error/);
    const results = readResults(out);
    const check = (name: string) => results.find((r) => r.subject === 't1059-004-unix-shell' && r.check === name);
    expect(check('pod-metadata')).toMatchObject({ status: 'pass', evidence: { pod: { container: 'trigger', workload_kind: 'Pod' } } });
    // The trigger image holds what a guest holds: the USDT program runs in its pod, seen with the pod.
    const usdt = results.find((r) => r.subject === 't1059-instrumented-interpreter' && r.check === 'cluster:events');
    expect(usdt).toMatchObject({ status: 'pass', evidence: { sample: [expect.stringMatching(/^process_exec by \/home\/jolsa\/tetragon\/contrib\/tester-progs\/usdt .*pod=/)] } });
    const stale = check('pod-metadata:after-runtime-restart');
    expect(stale).toMatchObject({ status: 'fail', reason: 'cri-socket-stale' });
    const restart = stale!.evidence.restart as { inode: { before: number; after: number }; agentSees: { after: string } };
    expect(restart.inode.after).not.toBe(restart.inode.before);
    expect(restart.agentSees.after).toBe(String(restart.inode.before));
    // The node's raw evidence is with its cell.
    const pods = JSON.parse(await readFile(join(out, 'cells', 'x86_64-6.12', 'trigger-pods.json'), 'utf8'));
    expect(Object.keys(pods)).toEqual(['stream', 'before', 'restart', 'after']);
    // One stream the whole round, never cut off.
    expect(pods.stream).toBe('every event the agent exports, unfiltered');
    expect(await readFile(join(out, 'cells', 'x86_64-6.12', 'tracingpolicy-list.json'), 'utf8')).toContain('"policies"');
  }, 1_200_000);
});

const existing = lacking('BPFGATE_KUBECONFIG', 'BPFGATE_TETRAGON_CHART', 'BPFGATE_HELM');
describe.skipIf(existing.length > 0)(title('the kubeconfig platform on a running cluster', existing), () => {
  it('makes a cell of every node with its facts, judges each node\'s load of a policy, and leaves nothing of its own', async () => {
    const out = tempOut('kubeconfig-lane');
    const run = await bpfgate([
      'run', '--kubeconfig', given.BPFGATE_KUBECONFIG!, '--suite', 'cluster', '--chart', given.BPFGATE_TETRAGON_CHART!, '--helm', given.BPFGATE_HELM!,
      ...(given.BPFGATE_TETRAGON_BUNDLE ? ['--tetragon', given.BPFGATE_TETRAGON_BUNDLE] : []),
      '--schema', CRD_DIR, '--policies', join(EXAMPLES, 'lsm_file_open.yaml'), '--triggers', TRIGGERS, '--out', out,
    ]);
    expect(run.stderr).not.toMatch(/internal error/);
    const manifest = JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as { cells: { cell: string; platform: string; kernel: { release: string }; node?: { name: string; runtime?: string } }[] };
    expect(manifest.cells.length).toBeGreaterThan(0);
    for (const cell of manifest.cells) {
      expect(cell).toMatchObject({ cell: `node-${cell.node?.name}`, platform: 'kubeconfig' });
      expect(cell.kernel.release).toMatch(/^\d+\.\d+/);
    }
    const loads = readResults(out).filter((r) => r.check === 'cluster:load');
    expect(loads.map((r) => r.cell).sort()).toEqual(manifest.cells.map((c) => c.cell).sort());
    const kubectl = onPath('kubectl');
    if (kubectl) {
      const { execa } = await import('execa');
      const left = await execa(kubectl, ['--kubeconfig', given.BPFGATE_KUBECONFIG!, 'get', 'namespaces,tracingpolicies', '-l', 'bpfgate.dev/run', '-o', 'name'], { reject: false });
      expect(left.stdout.trim()).toBe('');
    }
  }, 1_200_000);
});
