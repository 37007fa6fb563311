/**
 * `bpfgate repro cri-socket-stale` end to end, on this machine's real containerd and runc
 * (Debian's, started by bpfgate in a private mount namespace), real CRI, real images
 * imported by the real `ctr`: the file mount goes stale across a containerd restart (a new
 * socket inode, the old one still seen in the container, "connection refused"), the
 * directory mount answers. And whatever way the run ends (done, Ctrl-C, killed), nothing of
 * it is left: no process (containerd, shims, containers), no mount namespace, no mount, no
 * cgroup, no socket, no scratch directory.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfgate, find, readResults, spawnBpfgate, tempOut } from '../support/cli.js';

const CELL = 'host-containerd';
const BUG = 'cri-socket-stale';

function pids(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number);
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Processes whose command line names `dir` (the anchor and containerd name their scratch directory). */
function processesNaming(dir: string): number[] {
  return pids().filter((p) => p !== process.pid && (read(`/proc/${p}/cmdline`) ?? '').includes(dir));
}

/** Processes in the mount namespace `ns` (`mnt:[…]`): the anchor, containerd, the shims. */
function processesIn(ns: string): number[] {
  return pids().filter((p) => {
    try {
      return readlinkSync(`/proc/${p}/ns/mnt`) === ns;
    } catch {
      return false;
    }
  });
}

/** cgroup directories named `name` under any hierarchy (the run's containers live below `/<name>`). */
function cgroupsNamed(name: string): string[] {
  const hierarchies = readdirSync('/sys/fs/cgroup', { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join('/sys/fs/cgroup', e.name));
  return [...hierarchies, '/sys/fs/cgroup'].map((h) => join(h, name)).filter((d) => existsSync(d));
}

const mountsMentioning = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));

/** Nothing the run made is left: processes, namespace, cgroups, mounts, scratch directory and its sockets. */
function expectNothingLeft(tmp: string, ns: string, cgroup: string): void {
  expect(processesNaming(tmp), 'processes naming the scratch directory').toEqual([]);
  expect(processesIn(ns), `processes in ${ns}`).toEqual([]);
  expect(cgroupsNamed(cgroup), 'cgroups of the run').toEqual([]);
  expect(mountsMentioning(tmp), 'mounts of the scratch directory').toEqual([]);
  expect(readdirSync(tmp), 'scratch directories').toEqual([]);
}

/** Host state a private containerd must not change. */
const hostRun = () => ({ k3s: existsSync('/run/k3s'), containerd: existsSync('/run/containerd'), containerdSocket: existsSync('/run/containerd/containerd.sock') });

async function until(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function scratchOf(tmp: string): { tmp: string; out: string } {
  mkdirSync(tmp, { recursive: true });
  return { tmp, out: join(tmp, '..', 'out') };
}

describe('bpfgate repro cri-socket-stale on the host containerd', () => {
  it('reproduces the stale file mount with the inodes as evidence, rules it out for the directory mount, and leaves nothing behind', async () => {
    const { tmp, out } = scratchOf(join(tempOut('cri-socket'), 'tmp'));
    const before = hostRun();
    const started = Date.now();
    const run = await bpfgate(['repro', BUG, '--out', out], { env: { TMPDIR: tmp } });
    const seconds = (Date.now() - started) / 1000;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(`${BUG}: reproduced`);
    expect(run.stdout).toMatch(/shows on host-containerd repro:file-mount: socket inode (\d+) before the restart, (\d+) after; the container sees \1 before, \1 after/);
    expect(run.stdout).toMatch(/absent on host-containerd repro:dir-mount: socket inode (\d+) before the restart, (\d+) after; the container sees \1 before, \2 after/);

    const results = readResults(out);
    const file = find(results, CELL, BUG, 'repro:file-mount');
    const dir = find(results, CELL, BUG, 'repro:dir-mount');
    const inode = file.evidence.socketInode as { before: number; after: number };
    expect(inode.before).not.toBe(inode.after);

    expect(file).toMatchObject({ lane: 'runtime', suite: 'repro', status: 'pass', reason: BUG });
    expect(file.evidence).toMatchObject({ expected: 'shows', observed: 'shows', containerSees: { before: inode.before, after: inode.before }, socketRemovedOnStop: true });
    const fileAfter = (file.evidence.calls as { after: { ctr: { ok: boolean; error: string }; cri: { ok: boolean; error: string } } }).after;
    expect(fileAfter.ctr).toMatchObject({ ok: false });
    expect(fileAfter.ctr.error).toMatch(/connect: connection refused/);
    expect(fileAfter.cri.error).toMatch(/ECONNREFUSED/);
    expect(file.evidence.containerd).toMatch(/^\d+\.\d+/);
    expect(file.evidence.runc).toMatch(/^\d+\.\d+/);
    expect(file.evidence.container).toMatchObject({ stateAfterRestart: 'CONTAINER_RUNNING' });

    expect(dir).toMatchObject({ lane: 'runtime', status: 'pass', reason: null });
    expect(dir.evidence).toMatchObject({ expected: 'absent', observed: 'absent', socketInode: inode, containerSees: { before: inode.before, after: inode.after } });
    expect(dir.evidence.calls).toMatchObject({ before: { ctr: { ok: true }, cri: { ok: true } }, after: { ctr: { ok: true }, cri: { ok: true } } });

    const manifest = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(manifest.cells).toEqual([expect.objectContaining({ cell: CELL, platform: 'containerd', kernel: expect.objectContaining({ name: 'host' }) })]);
    expect(manifest.tools.containerd.containerd).toMatch(/^containerd /);
    for (const f of ['junit.xml', 'table.md', 'table.html', 'table.json']) expect(existsSync(join(out, f)), f).toBe(true);

    expectNothingLeft(tmp, file.evidence.namespace as string, (file.evidence.cgroupParent as string).slice(1));
    expect(hostRun()).toEqual(before);
    expect(seconds).toBeLessThan(60);
  });
});

describe('a cri-socket-stale run that is stopped with both containers running', () => {
  /** Starts the repro and waits until both containers run; returns what identifies the run. */
  async function startUntilContainersRun(tmp: string, out: string) {
    const child = spawnBpfgate(['repro', BUG, '--out', out], { env: { TMPDIR: tmp } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await until('both containers', () => /containers file-mount \(pid \d+\) and dir-mount \(pid \d+\) running/.test(stderr), 120_000);
    const scratch = readdirSync(tmp).find((n) => n.startsWith('bpfgate-containerd-')) as string;
    const anchor = processesNaming(join(tmp, scratch)).find((p) => (read(`/proc/${p}/cmdline`) ?? '').includes('anchor.sh')) as number;
    const ns = readlinkSync(`/proc/${anchor}/ns/mnt`);
    const containers = [...stderr.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
    // What the assertions below must see go away is really there now.
    expect(processesIn(ns).length).toBeGreaterThanOrEqual(4); // anchor, containerd, two shims
    expect(containers.every((p) => existsSync(`/proc/${p}`))).toBe(true);
    expect(cgroupsNamed(scratch).length).toBeGreaterThan(0);
    return { child, scratch, ns, containers, stderr: () => stderr };
  }

  it('on SIGINT stops the pods and containerd, exits 130, writes no check, and leaves nothing behind', async () => {
    const { tmp, out } = scratchOf(join(tempOut('cri-socket-int'), 'tmp'));
    const before = hostRun();
    const { child, scratch, ns, containers } = await startUntilContainersRun(tmp, out);
    const at = Date.now();
    child.kill('SIGINT');
    const run = await child;
    expect(run.exitCode).toBe(130);
    expect(Date.now() - at).toBeLessThan(15_000);
    expect(containers.filter((p) => existsSync(`/proc/${p}`))).toEqual([]);
    expectNothingLeft(tmp, ns, scratch);
    expect(existsSync(join(out, 'results.jsonl')) ? readResults(out).filter((r) => r.cell === CELL) : []).toEqual([]);
    expect(hostRun()).toEqual(before);
  });

  it('when bpfgate itself is killed (SIGKILL), the namespace anchor ends everything and removes the scratch', async () => {
    const { tmp, out } = scratchOf(join(tempOut('cri-socket-kill'), 'tmp'));
    const before = hostRun();
    const { child, scratch, ns, containers } = await startUntilContainersRun(tmp, out);
    child.kill('SIGKILL');
    await child;
    // The anchor notices within a second; killed containers are reaped by init a moment later.
    const gone = () => processesIn(ns).length === 0 && containers.every((p) => !existsSync(`/proc/${p}`)) && readdirSync(tmp).length === 0 && cgroupsNamed(scratch).length === 0;
    await until('the anchor to clean up', gone, 20_000);
    expect(containers.filter((p) => existsSync(`/proc/${p}`))).toEqual([]);
    expectNothingLeft(tmp, ns, scratch);
    expect(hostRun()).toEqual(before);
  });
});

describe('bpfgate repro cri-socket-stale where the machine cannot run it', () => {
  it('charges both checks to infra-tool-missing, naming the packages, and exits 3', async () => {
    const root = tempOut('cri-socket-missing');
    // A PATH with node and util-linux but no containerd (runc stays findable in /usr/sbin).
    const bin = join(root, 'bin');
    mkdirSync(bin);
    for (const [name, target] of [['node', process.execPath], ['unshare', '/usr/bin/unshare'], ['nsenter', '/usr/bin/nsenter'], ['getconf', '/usr/bin/getconf']] as const) symlinkSync(target, join(bin, name));
    const out = join(root, 'out');
    const run = await bpfgate(['repro', BUG, '--out', out], { env: { PATH: bin } });
    expect(run.exitCode, run.stderr).toBe(3);
    expect(run.stdout).toContain(`${BUG}: NOT reproduced`);
    const checks = readResults(out).filter((r) => r.cell === CELL);
    expect(checks.map((r) => [r.check, r.status, r.reason])).toEqual([
      ['repro:file-mount', 'error', 'infra-tool-missing'],
      ['repro:dir-mount', 'error', 'infra-tool-missing'],
    ]);
    expect(String(checks[0]?.evidence.error)).toMatch(/containerd.* not installed \(apt-get install containerd runc\)/);
    const manifest = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(manifest.cells[0].error).toMatchObject({ reason: 'infra-tool-missing' });
  });

  it('charges both checks to infra-download when the Debian packages (images, CRI api.proto) cannot be had', async () => {
    const root = tempOut('cri-socket-offline');
    const tmp = join(root, 'tmp');
    mkdirSync(tmp);
    // An empty cache and a mirror on a closed loopback port: apt cannot fetch a single index.
    const env = { TMPDIR: tmp, BPFGATE_CACHE: join(root, 'cache'), BPFGATE_DEBIAN_MIRROR: 'http://127.0.0.1:9/debian', BPFGATE_DEBIAN_SECURITY_MIRROR: 'http://127.0.0.1:9/debian-security' };
    const run = await bpfgate(['repro', BUG, '--out', join(root, 'out')], { env });
    expect(run.exitCode, run.stderr).toBe(3);
    expect(readResults(join(root, 'out')).map((r) => [r.check, r.status, r.reason])).toEqual([
      ['repro:file-mount', 'error', 'infra-download'],
      ['repro:dir-mount', 'error', 'infra-download'],
    ]);
    expect(readdirSync(tmp)).toEqual([]); // nothing was started
  });
});
