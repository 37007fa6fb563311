/**
 * The cluster lane's trigger image, built as a run builds it (Debian packages from the
 * machine's own mirror, the USDT program compiled by the host's clang) and read back with
 * GNU tar and binutils' readelf: each arch's image holds what the catalogue's triggers run
 * in a pod, the USDT program at the paths the USDT trigger runs it from, with its probes,
 * for its own arch, and bash for the interactive-shell trigger.
 */
import { mkdtempSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Arch } from '../../matrix/cell.js';
import { USDT_PROGRAM_PATHS } from '../../runners/qemu/guest-image.js';
import { TRIGGER_IMAGE, triggerImage } from '../../suites/cluster/images.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';

const MACHINE: Record<Arch, RegExp> = { x86_64: /Advanced Micro Devices X86-64/, arm64: /AArch64/ };

describe.each(['x86_64', 'arm64'] as const)('the trigger image for %s', (arch) => {
  let root: string;

  beforeAll(async () => {
    const image = await triggerImage(arch, TRIGGER_IMAGE);
    root = mkdtempSync(join(tmpdir(), `bpfgate-trigger-image-${arch}-`));
    const layer = `${image.diffIds[0]!.replace('sha256:', '')}/layer.tar`;
    writeFileSync(join(root, 'layer.tar'), (await execa('tar', ['-xOf', image.file, layer], { encoding: 'buffer' })).stdout);
    await execa('tar', ['-xf', 'layer.tar', '--exclude=dev/*'], { cwd: root });
  }, 600_000);

  it('holds the USDT program at each path the USDT trigger runs, for its arch, with the probes it fires', async () => {
    const triggers = await loadTriggerCatalogue();
    const usdt = triggers.find((t) => t.id === 't1059-instrumented-interpreter')!;
    for (const path of USDT_PROGRAM_PATHS) {
      // The trigger names the program's directory, the hooks name the program.
      expect(usdt.hooks).toEqual(expect.arrayContaining([expect.stringContaining(`usdt:/${path}:`)]));
      const header = await execa('readelf', ['-h', join(root, path)]);
      expect(header.stdout, path).toMatch(MACHINE[arch]);
      expect(header.stdout).toMatch(/Type:\s+EXEC/);
      const notes = (await execa('readelf', ['-n', join(root, path)])).stdout;
      expect(notes).toMatch(/stapsdt/);
      expect(notes).toMatch(/Provider: test\s+Name: usdt3/);
      expect(notes).toMatch(/Provider: tetragon\s+Name: test_4B/);
    }
  });

  it('holds bash, for the interactive-shell trigger, at both of its paths', async () => {
    const header = await execa('readelf', ['-h', join(root, 'usr', 'bin', 'bash')]);
    expect(header.stdout).toMatch(MACHINE[arch]);
    // A link in the image: resolved in the container's root, not this machine's.
    expect(readlinkSync(join(root, 'bin', 'bash'))).toBe('/usr/bin/bash');
  });
});
