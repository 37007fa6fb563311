import { describe, expect, it } from 'vitest';
import { cellId } from '../../matrix/cell-id.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import {
  DEFAULT_KERNELS,
  KERNEL_CATALOGUE,
  catalogueEntryFor,
  fileKernelEntry,
  findKernel,
  kernelName,
  sameKernel,
} from '../../matrix/kernel-catalogue.js';

describe('the kernel catalogue', () => {
  it('starts with the five default kernels in the design\'s order', () => {
    expect(DEFAULT_KERNELS.map((e) => [e.name, e.arch, e.pageSize, e.label])).toEqual([
      ['bookworm/linux-image-amd64', 'x86_64', 4, '6.1'],
      ['trixie/linux-image-amd64', 'x86_64', 4, '6.12'],
      ['bookworm/linux-image-arm64', 'arm64', 4, '6.1'],
      ['trixie/linux-image-arm64', 'arm64', 4, '6.12'],
      ['trixie/linux-image-arm64-16k', 'arm64', 16, '6.12'],
    ]);
    expect(KERNEL_CATALOGUE.slice(0, 5)).toEqual(DEFAULT_KERNELS);
  });

  it('offers the cloud and rt flavours and the bookworm-backports 6.12 builds on request', () => {
    for (const name of [
      'bookworm/linux-image-cloud-amd64',
      'trixie/linux-image-cloud-arm64',
      'trixie/linux-image-rt-amd64',
      'bookworm/linux-image-rt-arm64',
      'bookworm-backports/linux-image-amd64',
      'bookworm-backports/linux-image-arm64-16k',
    ]) {
      const e = findKernel(name);
      expect(e, name).toBeDefined();
      expect(e?.isDefault).toBe(false);
    }
    expect(findKernel('bookworm-backports/linux-image-arm64-16k')).toMatchObject({ label: '6.12', pageSize: 16, cellLabel: '6.12-bpo' });
    // bookworm has no 16K flavour, and 16K is an arm64-only flavour.
    expect(findKernel('bookworm/linux-image-arm64-16k')).toBeUndefined();
    expect(KERNEL_CATALOGUE.some((e) => e.arch === 'x86_64' && e.pageSize !== 4)).toBe(false);
  });

  it('has unique names, and cell labels that never give two entries the same cell id', () => {
    expect(new Set(KERNEL_CATALOGUE.map((e) => e.name)).size).toBe(KERNEL_CATALOGUE.length);
    const ids = KERNEL_CATALOGUE.map((e) => cellId({ arch: e.arch, pageSize: e.pageSize, kernelLabel: e.cellLabel, variants: [] }));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('names refs by suite and package, adding the arch only when the package does not say it', () => {
    expect(kernelName({ kind: 'debian', suite: 'trixie', package: 'linux-image-arm64-16k', debArch: 'arm64' })).toBe('trixie/linux-image-arm64-16k');
    expect(kernelName({ kind: 'debian', suite: 'trixie', package: 'linux-image-6.12.117+deb13-cloud-amd64', debArch: 'amd64' })).toBe(
      'trixie/linux-image-6.12.117+deb13-cloud-amd64',
    );
    expect(kernelName({ kind: 'debian', suite: 'trixie', package: 'linux-image-generic', debArch: 'arm64' })).toBe('trixie/linux-image-generic:arm64');
    expect(kernelName({ kind: 'file', image: '/srv/kernels/Image-6.6', config: '/srv/kernels/config-6.6' })).toBe('file:Image-6.6');
  });

  it('finds the entry of a Debian ref and tells refs apart', () => {
    const ref = { kind: 'debian' as const, suite: 'trixie', package: 'linux-image-arm64-16k', debArch: 'arm64' as const };
    expect(catalogueEntryFor(ref)?.pageSize).toBe(16);
    expect(catalogueEntryFor({ ...ref, suite: 'bookworm' })).toBeUndefined();
    expect(sameKernel(ref, { ...ref })).toBe(true);
    expect(sameKernel(ref, { ...ref, debArch: 'amd64' })).toBe(false);
    expect(sameKernel(ref, { kind: 'file', image: 'x', config: 'y' })).toBe(false);
  });

  it('turns a user\'s image and config into an entry', () => {
    const e = fileKernelEntry({ image: '/srv/Image', config: '/srv/config', arch: 'arm64', pageSize: 64, label: '6.6-rpi' });
    expect(e).toMatchObject({ name: 'file:Image', arch: 'arm64', pageSize: 64, label: '6.6-rpi', cellLabel: '6.6-rpi', isDefault: false });
    expect(e.ref).toEqual({ kind: 'file', image: '/srv/Image', config: '/srv/config' });
    expect(fileKernelEntry({ image: 'a', config: 'b', arch: 'x86_64' })).toMatchObject({ pageSize: 4, label: 'custom' });
  });

  it('agrees with the default matrix file on every kernel it names', async () => {
    const matrix = await loadDefaultMatrix();
    const kernels = new Map(matrix.cells.map((c) => [kernelName(c.kernel), c]));
    expect([...kernels.keys()].sort()).toEqual(DEFAULT_KERNELS.map((e) => e.name).sort());
    for (const [name, cell] of kernels) {
      const e = catalogueEntryFor(cell.kernel);
      expect([name, e?.arch, e?.pageSize, e?.label]).toEqual([name, cell.arch, cell.pageSize, cell.kernelLabel]);
    }
  });
});
