import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../core/errors.js';
import { DEFAULT_MATRIX_FILE, MATRIX_SCHEMA_FILE } from '../../matrix/assets.js';
import { cellId } from '../../matrix/cell-id.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { loadMatrix } from '../../matrix/load.js';
import { selectCells } from '../../matrix/select.js';
import { DEFAULT_CELL_IDS } from '../support/design.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-matrix-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function matrixFile(text: string): string {
  const file = join(dir, `m${n++}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Load a matrix that must fail, and return its InputError. */
async function loadError(text: string): Promise<InputError> {
  const file = matrixFile(text);
  const err = await loadMatrix(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  const input = err as InputError;
  expect(input.file).toBe(file);
  expect(input.message.startsWith(`${file}:${input.line}:${input.column}: `)).toBe(true);
  return input;
}

const DESIGN_IDS = [...DEFAULT_CELL_IDS];

describe('the default matrix', () => {
  it('gives the ten cell ids of the design table, in its order', async () => {
    const m = await loadDefaultMatrix();
    expect(m.file).toBe(DEFAULT_MATRIX_FILE);
    expect(m.platform).toBe('qemu');
    expect(m.cells.map((c) => c.id)).toEqual(DESIGN_IDS);
  });

  it('uses the Debian packages, page sizes and lsm= list of the design', async () => {
    const byId = new Map((await loadDefaultMatrix()).cells.map((c) => [c.id, c]));
    const pkg = (id: string) => {
      const k = byId.get(id)?.kernel;
      return k?.kind === 'debian' ? `${k.suite} ${k.package} ${k.debArch}` : undefined;
    };
    expect(pkg('x86_64-6.1')).toBe('bookworm linux-image-amd64 amd64');
    expect(pkg('x86_64-6.12')).toBe('trixie linux-image-amd64 amd64');
    expect(pkg('arm64-4k-6.1')).toBe('bookworm linux-image-arm64 arm64');
    expect(pkg('arm64-4k-6.12+nobpflsm')).toBe('trixie linux-image-arm64 arm64');
    expect(pkg('arm64-16k-6.12')).toBe('trixie linux-image-arm64-16k arm64');
    expect(byId.get('arm64-16k-6.12')?.pageSize).toBe(16);
    expect(byId.get('arm64-4k-6.1')?.pageSize).toBe(4);
    for (const id of DESIGN_IDS) {
      const cell = byId.get(id);
      const nobpf = id.endsWith('+nobpflsm');
      expect(cell?.variants).toEqual(nobpf ? ['nobpflsm'] : []);
      expect(cell?.bootArgs).toEqual(nobpf ? ['lsm=lockdown,capability,landlock,yama,apparmor'] : []);
      // The lsm= list of +nobpflsm must leave bpf out: that is the point of the variant.
      expect(cell?.bootArgs.join(' ')).not.toMatch(/\bbpf\b/);
    }
  });

  it('points editors at the schema that ships with the tool', () => {
    const first = readFileSync(DEFAULT_MATRIX_FILE, 'utf8').split('\n')[0] ?? '';
    const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    expect(m).not.toBeNull();
    expect(resolve(dirname(DEFAULT_MATRIX_FILE), m?.[1] ?? '')).toBe(MATRIX_SCHEMA_FILE);
  });
});

describe('expanding a matrix file', () => {
  it('makes the product of kernels and boot, with arm64 ids carrying the page size', async () => {
    const m = await loadMatrix(
      matrixFile(`
kernels:
  - { arch: arm64, pages: 16k, label: "6.12", debian: { suite: trixie, package: linux-image-arm64-16k } }
  - { arch: x86_64, label: "6.1-cloud", debian: { suite: bookworm, package: linux-image-cloud-amd64 } }
boot:
  - name: default
  - name: nobpflsm
    args: ["lsm=lockdown,capability,landlock,yama,apparmor"]
`),
    );
    expect(m.cells.map((c) => c.id)).toEqual(['arm64-16k-6.12', 'x86_64-6.1-cloud', 'arm64-16k-6.12+nobpflsm', 'x86_64-6.1-cloud+nobpflsm']);
    expect(m.cells[1]?.pageSize).toBe(4);
  });

  it('removes excluded cells by glob and adds included cells that exclude does not touch', async () => {
    const text = `
kernels:
  - { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-amd64 } }
  - { arch: arm64, label: "6.1", debian: { suite: bookworm, package: linux-image-arm64 } }
boot:
  - { name: default }
  - { name: nobpflsm, args: ["lsm=lockdown,capability"] }
exclude: ["arm64-*+nobpflsm"]
include:
  - kernel: { arch: arm64, label: "6.1", debian: { suite: bookworm, package: linux-image-arm64 } }
    boot: { name: mitigations, args: ["mitigations=off"] }
  - kernel: { arch: arm64, label: "6.12", debian: { suite: bookworm-backports, package: linux-image-arm64 } }
`;
    const m = await loadMatrix(matrixFile(text));
    const ids = m.cells.map((c) => c.id);
    expect(ids).toEqual(['x86_64-6.1', 'arm64-4k-6.1', 'x86_64-6.1+nobpflsm', 'arm64-4k-6.1+mitigations', 'arm64-4k-6.12']);
    expect(m.cells[3]?.bootArgs).toEqual(['mitigations=off']);
    // Stable: the same file always plans the same cells in the same order.
    expect((await loadMatrix(matrixFile(text))).cells).toEqual(m.cells);
  });

  it('resolves a file kernel relative to the matrix file', async () => {
    const sub = mkdtempSync(join(dir, 'own-'));
    writeFileSync(join(sub, 'vmlinuz-6.6'), 'not a real image, only its existence is checked when planning');
    writeFileSync(join(sub, 'config-6.6'), 'CONFIG_BPF_LSM=y\n');
    const file = join(sub, 'matrix.yaml');
    writeFileSync(file, 'kernels:\n  - { arch: x86_64, label: "6.6", file: { image: ./vmlinuz-6.6, config: ./config-6.6 } }\n');
    const m = await loadMatrix(file);
    expect(m.cells).toHaveLength(1);
    expect(m.cells[0]?.kernel).toEqual({ kind: 'file', image: join(sub, 'vmlinuz-6.6'), config: join(sub, 'config-6.6') });
  });
});

describe('matrix file errors', () => {
  it('reports x86_64 with 16k pages at the pages field', async () => {
    const e = await loadError(`kernels:
  - arch: x86_64
    pages: 16k
    label: "6.12"
    debian: { suite: trixie, package: linux-image-amd64 }
`);
    expect(e.code).toBe('matrix-invalid');
    expect([e.line, e.column]).toEqual([3, 12]);
    expect(e.message).toContain('kernels[0].pages: expected 4k');
  });

  it('reports an unknown arch with the values it expected', async () => {
    const e = await loadError(`kernels:
  - arch: riscv64
    label: "6.12"
    debian: { suite: trixie, package: linux-image-riscv64 }
`);
    expect(e.code).toBe('matrix-schema');
    expect([e.line, e.column]).toEqual([2, 11]);
    expect(e.message).toContain('kernels[0].arch: expected one of: x86_64, arm64 (got "riscv64")');
  });

  it('reports an unknown field at its key and lists the known ones', async () => {
    const e = await loadError(`kernels:
  - arch: arm64
    label: "6.1"
    pagesize: 16k
    debian: { suite: bookworm, package: linux-image-arm64 }
`);
    expect([e.line, e.column]).toEqual([4, 5]);
    expect(e.message).toContain('kernels[0].pagesize: unknown field "pagesize"; expected one of: arch, pages, label, debian, file');
  });

  it('reports a kernel that has both a Debian package and a file', async () => {
    const e = await loadError(`kernels:
  - arch: arm64
    label: "6.1"
    debian: { suite: bookworm, package: linux-image-arm64 }
    file: { image: ./Image, config: ./config }
`);
    expect(e.line).toBe(2);
    expect(e.message).toContain('kernels[0]: expected exactly one of: debian, file');
  });

  it('reports a missing required field at its parent', async () => {
    const e = await loadError(`kernels:
  - { arch: arm64, debian: { suite: bookworm, package: linux-image-arm64 } }
`);
    expect([e.line, e.column]).toEqual([2, 5]);
    expect(e.message).toContain('kernels[0]: missing required field "label"');
  });

  it('reports a file kernel whose image does not exist', async () => {
    const e = await loadError(`kernels:
  - arch: arm64
    pages: 16k
    label: own
    file:
      image: ./no-such-Image
      config: ./no-such-config
`);
    expect(e.code).toBe('matrix-invalid');
    expect([e.line, e.column]).toEqual([6, 14]);
    expect(e.message).toContain(`kernels[0].file.image: expected an existing file: ${join(dir, 'no-such-Image')} does not exist`);
  });

  it('reports a Debian package whose flavour contradicts the arch or the page size', async () => {
    const wrongArch = await loadError('kernels:\n  - { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-arm64 } }\n');
    expect(wrongArch.message).toContain('kernels[0].debian.package: expected a x86_64 kernel package: "linux-image-arm64" is a arm64 flavour');
    const wrongPages = await loadError('kernels:\n  - { arch: arm64, pages: 16k, label: "6.12", debian: { suite: trixie, package: linux-image-arm64 } }\n');
    expect(wrongPages.message).toContain('"linux-image-arm64" is a 4k kernel but pages is 16k');
  });

  it('reports a duplicate cell id naming both positions', async () => {
    const e = await loadError(`kernels:
  - { arch: arm64, label: "6.1", debian: { suite: bookworm, package: linux-image-arm64 } }
  - { arch: arm64, pages: 4k, label: "6.1", debian: { suite: bookworm-backports, package: linux-image-arm64 } }
`);
    expect(e.code).toBe('matrix-duplicate-cell');
    expect([e.line, e.column]).toEqual([3, 5]);
    expect(e.message).toContain('kernels[1]: duplicate cell id "arm64-4k-6.1"; also made by kernels[0] (line 2, column 5)');
  });

  it('reports an included cell that the product already has', async () => {
    const e = await loadError(`kernels:
  - { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-amd64 } }
include:
  - kernel: { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-cloud-amd64 } }
`);
    expect(e.line).toBe(4);
    expect(e.message).toContain('include[0]: duplicate cell id "x86_64-6.1"; also made by kernels[0] (line 2, column 5)');
  });

  it('reports an exclude glob that matches no cell', async () => {
    const e = await loadError(`kernels:
  - { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-amd64 } }
exclude: ["arm64-4k-6.1+nobpflsm"]
`);
    expect(e.line).toBe(3);
    expect(e.message).toContain('exclude[0]: "arm64-4k-6.1+nobpflsm" matches no cell of kernels x boot; the cells are: x86_64-6.1');
  });

  it('reports boot arguments on a cluster platform', async () => {
    const e = await loadError(`platform: kind
kernels:
  - { arch: x86_64, label: "6.1", debian: { suite: bookworm, package: linux-image-amd64 } }
boot:
  - { name: nobpflsm, args: ["lsm=lockdown"] }
`);
    expect(e.message).toContain('boot[0].args: expected no boot args with platform kind');
  });

  it('reports YAML syntax errors with their line', async () => {
    const e = await loadError('kernels:\n  - { arch: x86_64, label: "6.1"\n  - bad\n');
    expect(e.code).toBe('matrix-yaml');
    expect(e.line).toBe(3);
    expect(e.message).toContain('not valid YAML: Flow map in block collection must be sufficiently indented');
  });

  it('reports a repeated key as a YAML error at the second key', async () => {
    const e = await loadError('kernels: []\nplatform: qemu\nplatform: kind\n');
    expect([e.code, e.line, e.column]).toEqual(['matrix-yaml', 3, 1]);
    expect(e.message).toContain('Map keys must be unique');
  });

  it('reports an empty file as a missing kernels list', async () => {
    const e = await loadError('# nothing yet\n');
    expect(e.code).toBe('matrix-schema');
    expect(e.message).toContain('expected a mapping (got null)');
  });

  it('reports a matrix file that does not exist without a position', async () => {
    const err = await loadMatrix(join(dir, 'absent.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('matrix-missing');
  });
});

describe('cell ids and --cells', () => {
  it('names every default cell by the parts that made it', async () => {
    for (const cell of (await loadDefaultMatrix()).cells) {
      expect(cellId({ arch: cell.arch, pageSize: cell.pageSize, kernelLabel: cell.kernelLabel, variants: cell.variants })).toBe(cell.id);
    }
  });

  it('selects cells by comma-separated globs, keeping the matrix order', async () => {
    const cells = (await loadDefaultMatrix()).cells;
    expect(selectCells(cells).map((c) => c.id)).toEqual(DESIGN_IDS);
    expect(selectCells(cells, 'arm64-16k-*, x86_64-6.1').map((c) => c.id)).toEqual(['x86_64-6.1', 'arm64-16k-6.12', 'arm64-16k-6.12+nobpflsm']);
    expect(selectCells(cells, '*+nobpflsm')).toHaveLength(5);
    expect(selectCells(cells, 'arm64-4k-6.1+nobpflsm').map((c) => c.id)).toEqual(['arm64-4k-6.1+nobpflsm']);
  });

  it('refuses a --cells glob that matches nothing, listing the cells', async () => {
    const cells = (await loadDefaultMatrix()).cells;
    expect(() => selectCells(cells, 'x86_64-*,arm64-64k-*')).toThrow(/--cells: "arm64-64k-\*" matches no cell; the cells are: x86_64-6.1, /);
  });
});
