/**
 * Builds the guest images of both arches for real (Debian packages of the guest arch
 * through the private apt, the project's BPF objects, guest/rootfs), checks their
 * contents, caching and reproducibility, and boots each once under QEMU (TCG) with a
 * throwaway /init in a temp copy of the overlay tree and a per-cell overlay appended,
 * to show that busybox, bpftool, its libraries and the BPF objects work in the guest.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../core/errors.js';
import type { Arch } from '../../matrix/cell.js';
import { DEFAULT_KERNELS } from '../../matrix/kernel-catalogue.js';
import { listArchive, type ArchiveEntry } from '../../runners/qemu/cpio.js';
import { PACKAGE_ROOT } from '../../core/assets.js';
import { GUEST_PACKAGES, USDT_PROGRAM_PATHS, buildGuestImage, buildOverlay, type GuestImage } from '../../runners/qemu/guest-image.js';
import { UPROBE_INDEX_PATH } from '../../runners/qemu/uprobe-index.js';
import { fetchKernel } from '../../runners/qemu/kernel-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-guest-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROOT = PACKAGE_ROOT;
const BPF_SOURCES = readdirSync(join(ROOT, 'guest', 'bpf')).filter((n) => n.endsWith('.bpf.c')).sort();
const images = new Map<Arch, GuestImage>();
const listings = new Map<Arch, Map<string, ArchiveEntry>>();

beforeAll(async () => {
  for (const arch of ['x86_64', 'arm64'] as const) {
    const started = Date.now();
    const image = await buildGuestImage(arch, { onProgress: (l) => console.info(`  ${l}`) });
    console.info(`guest image ${arch}: ${(image.bytes / 1e6).toFixed(2)} MB, ${image.origin} in ${Date.now() - started} ms`);
    images.set(arch, image);
    listings.set(arch, new Map((await listArchive(image.path)).map((e) => [e.path, e])));
  }
});

const LAYOUT: Record<Arch, { triplet: string; loader: string; loaderTarget: string }> = {
  x86_64: { triplet: 'x86_64-linux-gnu', loader: 'lib64/ld-linux-x86-64.so.2', loaderTarget: '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  arm64: { triplet: 'aarch64-linux-gnu', loader: 'lib/ld-linux-aarch64.so.1', loaderTarget: 'aarch64-linux-gnu/ld-linux-aarch64.so.1' },
};

describe.each(['x86_64', 'arm64'] as const)('the %s guest image', (arch) => {
  const entry = (path: string) => listings.get(arch)?.get(path);

  it('holds busybox, bpftool, the dynamic loader at its ABI path and every library bpftool needs', () => {
    const { triplet, loader, loaderTarget } = LAYOUT[arch];
    expect(entry('bin/busybox')?.mode).toBe('-rwxr-xr-x');
    expect(entry('usr/sbin/bpftool')?.mode).toBe('-rwxr-xr-x');
    expect(entry(loader)).toMatchObject({ mode: 'lrwxrwxrwx', linkTarget: loaderTarget });
    for (const lib of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libelf.so.1', 'libz.so.1', 'libcap.so.2']) {
      const name = arch === 'arm64' && lib.startsWith('ld-linux') ? 'ld-linux-aarch64.so.1' : lib;
      expect(entry(`lib/${triplet}/${name}`)?.mode, name).toMatch(/^-rwx/);
    }
  });

  it('holds one BPF object per guest/bpf source and the overlay tree with its modes', () => {
    expect(BPF_SOURCES.length).toBeGreaterThan(0);
    for (const src of BPF_SOURCES) expect(entry(`bpf/${src.replace(/\.c$/, '.o')}`)?.mode, src).toBe('-rw-r--r--');
    expect(images.get(arch)?.bpfObjects).toEqual(BPF_SOURCES.map((s) => `/bpf/${s.replace(/\.c$/, '.o')}`));
    expect(entry('init')?.mode).toBe('-rwxr-xr-x');
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'etc']) expect(entry(d)?.mode, d).toMatch(/^d/);
  });

  it('holds what the example uprobe and USDT policies name: bash at /usr/bin/bash with /bin/bash linked to it, libc at Debian\'s path, the USDT program at the tester programs\' paths', () => {
    const { triplet } = LAYOUT[arch];
    expect(entry('usr/bin/bash')?.mode).toBe('-rwxr-xr-x');
    expect(entry('bin/bash')).toMatchObject({ mode: 'lrwxrwxrwx', linkTarget: '/usr/bin/bash' });
    expect(entry(`lib/${triplet}/libtinfo.so.6`)?.mode).toMatch(/^-rwx/);
    expect(entry('lib64/libc.so.6')).toBeUndefined();
    for (const p of USDT_PROGRAM_PATHS) expect(entry(p)?.mode, p).toBe('-rwxr-xr-x');
  });

  it('indexes the uprobe offsets of its ELF files: bash\'s readline, libc\'s malloc, both USDT probes', async () => {
    const { triplet } = LAYOUT[arch];
    const unpacked = join(dir, `index-${arch}`);
    rmSync(unpacked, { recursive: true, force: true });
    const r = await execa('sh', ['-c', `mkdir -p "$1" && cd "$1" && gzip -dc "$2" | cpio -id --quiet ${UPROBE_INDEX_PATH}`, 'sh', unpacked, images.get(arch)!.path]);
    expect(r.exitCode).toBe(0);
    const index = readFileSync(join(unpacked, UPROBE_INDEX_PATH), 'utf8');
    for (const line of ['f /usr/bin/bash readline ', 'f /usr/bin/bash main ', 'f /usr/bin/bash _start ', `f /lib/${triplet}/libc.so.6 malloc `]) expect(index, line).toContain(line);
    expect(index).toMatch(/^n \/home\/jolsa\/tetragon\/contrib\/tester-progs\/usdt test usdt3 0x[0-9a-f]+ 0x0$/m);
    expect(index).toMatch(/^n \/home\/jolsa\/tetragon\/contrib\/tester-progs\/usdt-override tetragon test_4B 0x[0-9a-f]+ 0x[1-9a-f][0-9a-f]*$/m);
    // BPF objects are ELF too, but not executables: the agent's library opens executables and shared objects.
    expect(index).not.toContain('/bpf/');
  });

  it('records the Debian packages of its own arch it was made from, bpftool from bookworm-backports', () => {
    const pkgs = images.get(arch)?.packages ?? [];
    expect(pkgs.map((p) => p.package)).toEqual(GUEST_PACKAGES.map((p) => p.package));
    expect(pkgs.find((p) => p.package === 'bpftool')).toMatchObject({ suite: 'bookworm-backports', version: expect.stringMatching(/^7\.5\.0\+6\.12\.\d+-\d+~bpo12\+\d+$/) });
    expect(pkgs.find((p) => p.package === 'busybox-static')?.version).toMatch(/^1:1\.35\.0-/);
  });

  it('is small and comes from the cache the second time', async () => {
    const image = images.get(arch) as GuestImage;
    expect(image.bytes).toBeGreaterThan(1_000_000);
    // busybox + bpftool + libc alone are about 2.4 MB; the trigger tools (perl, strace) add about 2.7 MB.
    expect(image.bytes).toBeLessThan(8_000_000);
    const started = Date.now();
    const again = await buildGuestImage(arch);
    expect([again.origin, again.sha256, again.path]).toEqual(['cache', image.sha256, image.path]);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

/** A temp copy of guest/rootfs whose /init is a throwaway smoke test (never written into the project). */
function smokeRootfs(): string {
  const rootfs = join(dir, 'rootfs');
  if (existsSync(rootfs)) return rootfs;
  cpSync(join(ROOT, 'guest', 'rootfs'), rootfs, { recursive: true });
  writeFileSync(
    join(rootfs, 'init'),
    `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo "SMOKE bpftool=$(bpftool version 2>&1 | head -1)"
for step in /cell/*.sh; do . "$step"; done
echo "SMOKE done"
poweroff -f
`,
    { mode: 0o755 },
  );
  return rootfs;
}

const SMOKE_STEP = `bpftool prog loadall /bpf/kprobe.bpf.o /sys/fs/bpf/p pinmaps /sys/fs/bpf/m autoattach >/tmp/load 2>&1
echo "SMOKE load=$?"
cat /proc/version >/dev/null; cat /proc/version >/dev/null
echo "SMOKE hits=$(bpftool -j map dump pinned /sys/fs/bpf/m/hits | sed 's/.*"value":\\([0-9]*\\).*/\\1/')"
echo "SMOKE page=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2)"
echo "SMOKE overlay=$(cat /cell/marker.txt)"
`;

describe('building images', () => {
  it('gives the same bytes for the same inputs, and a new image when the overlay tree changes', async () => {
    const rootfs = smokeRootfs();
    const first = await buildGuestImage('arm64', { rootfsDir: rootfs, bpfDir: join(ROOT, 'guest', 'bpf') });
    expect(first.sha256).not.toBe(images.get('arm64')?.sha256);
    rmSync(dirname(first.path), { recursive: true, force: true });
    const second = await buildGuestImage('arm64', { rootfsDir: rootfs, bpfDir: join(ROOT, 'guest', 'bpf') });
    expect(second.origin).toBe('build');
    expect(second.sha256).toBe(first.sha256);
  });

  it('fails naming the library when no listed package provides one a binary needs', async () => {
    const withoutLibcap = GUEST_PACKAGES.filter((p) => p.package !== 'libcap2');
    const err = await buildGuestImage('x86_64', { packages: withoutLibcap }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as InfraError).code).toBe('infra-guest-build');
    const providers = withoutLibcap.filter((p) => p.libraries).map((p) => p.package).join(', ');
    expect((err as InfraError).message).toContain(`/usr/sbin/bpftool needs libcap.so.2, which none of the guest library packages (${providers}) provides`);
  });

  it('fails clearly when the overlay tree has no /init', async () => {
    const empty = mkdtempSync(join(dir, 'no-init-'));
    const err = await buildGuestImage('x86_64', { rootfsDir: empty, bpfDir: join(ROOT, 'guest', 'bpf') }).catch((e: unknown) => e);
    expect((err as InfraError).code).toBe('infra-guest-build');
    expect((err as InfraError).message).toContain(`${join(empty, 'init')} is missing`);
  });
});

describe('per-cell overlays', () => {
  it('are newc archives of the given files with their modes and parent directories, owned by root', async () => {
    const out = join(dir, 'overlay.cpio.gz');
    await buildOverlay(
      [
        { path: '/bpfgate/steps/10-probe.sh', content: 'echo probe\n' },
        { path: 'bpfgate/bin/trigger', content: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      ],
      out,
    );
    const entries = await listArchive(out);
    expect(entries.map((e) => [e.path, e.mode])).toEqual([
      ['bpfgate', 'drwxr-xr-x'],
      ['bpfgate/bin', 'drwxr-xr-x'],
      ['bpfgate/bin/trigger', '-rwxr-xr-x'],
      ['bpfgate/steps', 'drwxr-xr-x'],
      ['bpfgate/steps/10-probe.sh', '-rw-r--r--'],
    ]);
    const { stdout } = await execa('sh', ['-c', `gzip -dc '${out}' | cpio -t -v --quiet`]);
    expect(stdout.split('\n').every((l) => / root +root /.test(l))).toBe(true);
  });

  it('refuse a path that leaves the guest root', async () => {
    const err = await buildOverlay([{ path: '/bpfgate/../../etc/x', content: '' }], join(dir, 'bad.cpio.gz')).catch((e: unknown) => e);
    expect((err as InfraError).code).toBe('infra-guest-build');
  });
});

describe('booting the images', () => {
  const BOOTS: [Arch, string, string][] = [
    ['arm64', 'trixie/linux-image-arm64-16k', '16'],
    ['x86_64', 'trixie/linux-image-amd64', '4'],
  ];

  it.each(BOOTS)('runs bpftool and a BPF object from the %s image on %s, with the overlay appended', async (arch, kernelName, page) => {
    const entry = DEFAULT_KERNELS.find((e) => e.name === kernelName);
    const kernel = await fetchKernel(entry?.ref as NonNullable<typeof entry>['ref']);
    const base = await buildGuestImage(arch, { rootfsDir: smokeRootfs(), bpfDir: join(ROOT, 'guest', 'bpf') });
    const overlay = join(dir, `cell-${arch}.cpio.gz`);
    await buildOverlay([{ path: '/cell/10-smoke.sh', content: SMOKE_STEP }, { path: '/cell/marker.txt', content: `appended-${arch}` }], overlay);
    const initrd = join(dir, `initrd-${arch}.img`);
    writeFileSync(initrd, Buffer.concat([readFileSync(base.path), readFileSync(overlay)]));
    const qemu =
      arch === 'x86_64'
        ? ['qemu-system-x86_64', '-accel', 'tcg', '-cpu', 'max', '-M', 'q35', '-append', 'console=ttyS0 panic=-1 quiet']
        : ['qemu-system-aarch64', '-M', 'virt', '-cpu', 'max,pauth-impdef=on', '-accel', 'tcg', '-append', 'console=ttyAMA0 panic=-1 quiet'];
    const [bin, ...args] = qemu as [string, ...string[]];
    const started = Date.now();
    const run = await execa(bin, [...args, '-m', '1024', '-smp', '1', '-kernel', kernel.image, '-initrd', initrd, '-nographic', '-no-reboot'], {
      reject: false,
      timeout: 100_000,
      stdin: 'ignore',
    });
    const smoke = Object.fromEntries(
      run.stdout
        .replace(/\r/g, '')
        .split('\n')
        // x86 consoles start with SeaBIOS escape sequences on the same line (findings P10).
        .filter((l) => l.includes('SMOKE '))
        .map((l) => l.slice(l.indexOf('SMOKE ') + 6).split('='))
        .map(([k, ...v]) => [k, v.join('=')]),
    );
    console.info(`boot ${arch} ${kernelName}: ${Date.now() - started} ms, ${JSON.stringify(smoke)}`);
    expect(smoke).toMatchObject({ bpftool: 'bpftool v7.5.0', load: '0', page, overlay: `appended-${arch}`, done: '' });
    expect(Number(smoke.hits)).toBeGreaterThan(0);
  });
});
