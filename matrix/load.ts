/**
 * Loading a matrix file, in stages, each with its own error code:
 * parse (matrix-yaml) -> schema (matrix-schema, the bundled JSON Schema) ->
 * meaning (matrix-invalid: page sizes, Debian flavours, kernel files on disk,
 * duplicate ids, excludes that match nothing). Every error is an InputError that
 * names the file, line, column, field path and what was expected.
 * Invariant: a LoadedMatrix has at least one cell, all ids unique.
 */
import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { schemaValidator } from '../core/schemas.js';
import { YamlInput, type FieldPath } from '../core/yaml-input.js';
import type { Cell, Platform } from './cell.js';
import { expandMatrix, kernelRef, type KernelSpec, type MatrixSpec, type PlanProblem } from './expand.js';

export interface LoadedMatrix {
  /** Absolute path of the matrix file. */
  file: string;
  platform: Platform;
  /** In stable order: boot-major product minus exclude, then include. */
  cells: Cell[];
}

/** Read, validate and expand a matrix file. */
export async function loadMatrix(file: string): Promise<LoadedMatrix> {
  const path = resolve(file);
  const input = await YamlInput.read(path, { missing: 'matrix-missing', syntax: 'matrix-yaml' }, 'matrix file');
  const spec = input.validate(schemaValidator<MatrixSpec>('matrix'), 'matrix-schema');

  const baseDir = dirname(path);
  const kernels: [KernelSpec, FieldPath][] = [
    ...spec.kernels.map((k, i): [KernelSpec, FieldPath] => [k, ['kernels', i]]),
    ...(spec.include ?? []).map((inc, i): [KernelSpec, FieldPath] => [inc.kernel, ['include', i, 'kernel']]),
  ];
  const problems: PlanProblem[] = kernels.flatMap(([k, at]) => kernelProblems(k, at));
  problems.push(...bootProblems(spec));
  for (const [k, at] of kernels) problems.push(...(await kernelFileProblems(k, at, baseDir)));
  const plan = expandMatrix(spec, baseDir);
  problems.push(...plan.problems);

  // Report the first problem in file order, whichever check found it.
  const located = problems.map((p) => ({ p, pos: input.locate(p.path) }));
  located.sort((a, b) => a.pos.line - b.pos.line || a.pos.column - b.pos.column);
  const first = located[0]?.p;
  if (first) {
    const also = first.other ? `; also made by ${input.describePosition(first.other)}` : '';
    throw input.error(first.code, first.path, `${first.message}${also}`);
  }
  if (plan.cells.length === 0) throw input.error('matrix-invalid', ['exclude'], 'exclude removes every cell and include adds none: the matrix is empty');
  return { file: path, platform: spec.platform ?? 'qemu', cells: plan.cells };
}

const FLAVOUR_ARCH = [
  { re: /(^|-)amd64(-|$)/, arch: 'x86_64' },
  { re: /(^|-)arm64(-|$)/, arch: 'arm64' },
] as const;

/** Facts about one kernel entry that the schema cannot state. */
function kernelProblems(k: KernelSpec, at: FieldPath): PlanProblem[] {
  const out: PlanProblem[] = [];
  const pages = k.pages ?? '4k';
  if (k.arch === 'x86_64' && pages !== '4k') {
    out.push({ code: 'matrix-invalid', path: [...at, 'pages'], message: `expected 4k: x86_64 has only 4K pages (got ${pages})` });
  }
  if (k.debian) {
    const pkg = k.debian.package;
    // A Debian flavour names its arch and page size; a mismatch would test another kernel than the id says.
    for (const { re, arch } of FLAVOUR_ARCH) {
      if (re.test(pkg) && k.arch !== arch) {
        out.push({ code: 'matrix-invalid', path: [...at, 'debian', 'package'], message: `expected a ${k.arch} kernel package: "${pkg}" is a ${arch} flavour` });
      }
    }
    const pkgPages = /-(16k|64k)$/.exec(pkg)?.[1] ?? '4k';
    if (pkgPages !== pages) {
      out.push({
        code: 'matrix-invalid',
        path: [...at, 'debian', 'package'],
        message: `expected pages and package to agree: "${pkg}" is a ${pkgPages} kernel but pages is ${pages}`,
      });
    }
  }
  return out;
}

/** Boot arguments only reach a kernel that bpfgate boots itself. */
function bootProblems(spec: MatrixSpec): PlanProblem[] {
  const platform = spec.platform ?? 'qemu';
  // QEMU guests, alone or as a cluster's nodes, boot the kernel bpfgate gives them.
  if (platform === 'qemu' || platform === 'qemu-cluster') return [];
  const withArgs = [
    ...(spec.boot ?? []).map((b, i) => ({ b, path: ['boot', i, 'args'] as FieldPath })),
    ...(spec.include ?? []).flatMap((inc, i) => (inc.boot ? [{ b: inc.boot, path: ['include', i, 'boot', 'args'] as FieldPath }] : [])),
  ].filter(({ b }) => (b.args ?? []).length > 0);
  return withArgs.map(({ path }) => ({
    code: 'matrix-invalid',
    path,
    message: `expected no boot args with platform ${platform}: boot arguments apply only to kernels bpfgate boots (qemu, qemu-cluster)`,
  }));
}

async function kernelFileProblems(k: KernelSpec, at: FieldPath, baseDir: string): Promise<PlanProblem[]> {
  const ref = kernelRef(k, baseDir);
  if (ref.kind !== 'file') return [];
  const out: PlanProblem[] = [];
  for (const field of ['image', 'config'] as const) {
    try {
      await access(ref[field]);
    } catch {
      out.push({ code: 'matrix-invalid', path: [...at, 'file', field], message: `expected an existing file: ${ref[field]} does not exist (paths are relative to the matrix file)` });
    }
  }
  return out;
}
