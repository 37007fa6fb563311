/**
 * Choosing the accelerator. KVM is used only when it really boots the kernel:
 * a /dev/kvm that accepts a VM and never runs it (a nested PVM host: stock Debian
 * kernels stop in the decompressor or hit an emulation failure) must fall back
 * to TCG and never hang the run. arm64 guests on an x86_64 host are always TCG.
 *
 * A trial boot's verdict is cached per host kernel, QEMU version and kernel image,
 * so the trial costs once per machine, not once per run.
 */
import { access, constants, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { arch as hostArch, release as hostRelease, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../../core/cache.js';
import type { Arch } from '../../matrix/cell.js';
import { bootGuest, type Accel } from './vm.js';

export interface AccelChoice {
  accel: Accel;
  why: string;
}

const TRIAL_TIMEOUT_MS = 20_000;
export const RAW_DONE_MARKER = '@@BPFGATE-RAW:';

function hostIs(arch: Arch): boolean {
  return (arch === 'x86_64' && hostArch() === 'x64') || (arch === 'arm64' && hostArch() === 'arm64');
}

async function qemuVersion(arch: Arch): Promise<string> {
  const binary = arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
  const r = await execa(binary, ['--version'], { reject: false });
  return r.stdout.split('\n')[0] ?? 'unknown';
}

async function readVerdicts(file: string): Promise<Record<string, AccelChoice>> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, AccelChoice>;
  } catch {
    return {};
  }
}

/**
 * Decide the accelerator for one kernel. `BPFGATE_ACCEL=tcg|kvm` forces it
 * (kvm still falls back if the trial boot fails).
 */
export async function chooseAccel(arch: Arch, kernelImage: string, imageSha256: string, baseInitrd: string): Promise<AccelChoice> {
  const forced = process.env.BPFGATE_ACCEL;
  if (forced === 'tcg') return { accel: 'tcg', why: 'BPFGATE_ACCEL=tcg' };
  if (!hostIs(arch)) return { accel: 'tcg', why: `${arch} guest on a ${hostArch()} host` };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', why: '/dev/kvm is missing or not accessible' };
  }
  if (forced !== 'kvm' && existsSync('/sys/module/kvm_pvm')) {
    return { accel: 'tcg', why: 'KVM is the nested kvm_pvm module: stock kernels never get past the decompressor on it' };
  }
  const file = join(await cacheDir('accel'), 'verdicts.json');
  const key = `${hostRelease()}|${await qemuVersion(arch)}|${imageSha256}`;
  const verdicts = await readVerdicts(file);
  const known = verdicts[key];
  if (known && forced !== 'kvm') return known;

  const outcome = await bootGuest({
    arch,
    kernel: kernelImage,
    initrd: baseInitrd,
    append: ['rdinit=/raw-init'],
    accel: 'kvm',
    timeoutMs: TRIAL_TIMEOUT_MS,
    serialLog: join(tmpdir(), `bpfgate-kvm-trial-${process.pid}.log`),
    doneMarker: RAW_DONE_MARKER,
  });
  const choice: AccelChoice =
    outcome.status === 'done'
      ? { accel: 'kvm', why: `a KVM trial boot reached init in ${outcome.wallMs} ms` }
      : { accel: 'tcg', why: `a KVM trial boot did not reach init (${outcome.status} after ${outcome.wallMs} ms)` };
  verdicts[key] = choice;
  await writeFile(file, JSON.stringify(verdicts, null, 2));
  return choice;
}
