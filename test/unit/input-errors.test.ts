/**
 * The one positioned input (core/yaml-input.ts) and what every file kind says about its
 * first problem: file, line, column, field and what was expected, the same way for all.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.js';
import { loadBaseline } from '../../core/baseline.js';
import { InputError } from '../../core/errors.js';
import { readResultsDir, RESULTS_FILE } from '../../core/results-store.js';
import { YamlInput } from '../../core/yaml-input.js';
import { loadMatrix } from '../../matrix/load.js';
import { readPolicies } from '../../policy/index.js';
import { readLockFile } from '../../runners/qemu/lockfile.js';
import { loadTriggerFiles } from '../../suites/triggers/load.js';
import { CRD_DIR, EXTRA } from '../support/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfgate-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

async function inputError(load: () => Promise<unknown>): Promise<InputError> {
  const err = await load().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe('the shared positioned input', () => {
  it('reads every document of a multi-document file with the Kubernetes YAML rules, skipping empty ones', () => {
    const docs = YamlInput.parseAll('a: yes\nb: 0777\nc: 2001-12-14\n---\n# nothing\n---\nkind: Pod\n', 'k.yaml', { dialect: 'kubernetes' });
    expect(docs.map((d) => [d.docIndex, d.start.line])).toEqual([
      [0, 1],
      [2, 7],
    ]);
    expect(docs[0]!.value).toEqual({ a: true, b: 511, c: '2001-12-14' });
    // YAML 1.2 (every other file kind) reads the same text as strings and a decimal.
    expect(YamlInput.parse('a: yes\nb: 0777\n', 'y.yaml', 'x').value).toEqual({ a: 'yes', b: 777 });
  });

  it('keeps a broken document with its problem, and still reads its kind and name from the parse tree', () => {
    const [doc] = YamlInput.parseAll('kind: TracingPolicy\nmetadata:\n  name: x\nspec:\n  - a\n   b: 1\n', 'b.yaml', { dialect: 'kubernetes' });
    expect(doc!.value).toBeUndefined();
    expect(doc!.problem).toMatchObject({ line: 5, column: 5 });
    expect([doc!.stringAt(['kind']), doc!.stringAt(['metadata', 'name'])]).toEqual(['TracingPolicy', 'x']);
  });

  it('locates a value, a key, and the nearest parent of a field that is not there', () => {
    const input = YamlInput.parse('top:\n  list:\n    - name: a\n      value: 1\n', 'l.yaml', 'x');
    expect(input.locate(['top', 'list', 0, 'value'])).toEqual({ line: 4, column: 14 });
    expect(input.locate(['top', 'list'], 'key')).toEqual({ line: 2, column: 3 });
    expect(input.locate(['top', 'list', 0, 'missing'])).toEqual({ line: 3, column: 7 });
  });

  it('reads JSON strictly but positions it as YAML', () => {
    expect(YamlInput.parse('{"a": [1, 2]}', 'j.json', 'x', { dialect: 'json' }).value).toEqual({ a: [1, 2] });
    const err = (() => {
      try {
        YamlInput.parse('{\n  "a": 1,\n  "b": \'single\'\n}\n', 'j.json', 'j-json', { dialect: 'json' });
      } catch (e) {
        return e as InputError;
      }
      throw new Error('single quotes were accepted as JSON');
    })();
    expect([err.code, err.line, err.column]).toEqual(['j-json', 3, 8]);
    expect(err.message).toMatch(/^j\.json:3:8: not valid JSON: /);
  });
});

describe("each file kind's first schema problem", () => {
  // One table for all kinds: the loader, a file with two problems, and where the first one is.
  const cases: Array<{ kind: string; file: string; text: string; load: (file: string) => Promise<unknown>; code: string; at: [number, number]; field: string; detail: string }> = [
    {
      kind: 'matrix',
      file: 'matrix.yaml',
      text: 'kernels:\n  - arch: x86_64\n    label: "6.1"\n    pages: 16\n    debian: { suite: bookworm, package: linux-image-amd64 }\nboot: 3\n',
      load: loadMatrix,
      code: 'matrix-schema',
      at: [4, 12],
      field: 'kernels[0].pages',
      detail: 'kernels[0].pages: expected one of: 4k, 16k, 64k (got 16) (and 1 more problem)',
    },
    {
      kind: 'config',
      file: 'bpfgate.config.yaml',
      text: '# defaults of this repository\nschema: crd/\njobs: two\nout: [a]\n',
      load: loadConfig,
      code: 'config-schema',
      at: [3, 7],
      field: 'jobs',
      detail: 'jobs: expected an integer (got "two") (and 1 more problem)',
    },
    {
      kind: 'lock file',
      file: 'bpfgate.lock.json',
      text: '{\n  "lockfileVersion": 1,\n  "kernels": [\n    { "name": "trixie/linux-image-amd64", "debArch": "s390x" }\n  ]\n}\n',
      load: readLockFile,
      code: 'lockfile-schema',
      at: [4, 5],
      field: 'kernels[0]',
      detail: 'kernels[0]: missing required field "suite" (and 8 more problems)',
    },
    {
      kind: 'trigger',
      file: 't1082-probe.yaml',
      text: 'id: t1082-probe\ntechnique: T1082\nname: System Information Discovery\ntactic: discovery\ndescription: reads uname\nmarker: bpfgate-t1082-probe\nsteps: uname -a "$BPFGATE_MARKER"\ncleanup: "true"\nhooks: [kprobe:sys_newuname]\nexpect: [{ type: process_exec, binaryy: /bin/uname }]\n',
      load: (file) => loadTriggerFiles([file]),
      code: 'trigger-schema',
      at: [10, 32],
      field: 'expect[0].binaryy',
      detail: 'expect[0].binaryy: unknown field "binaryy"; expected one of: type, binary, argumentsContains, function_name, policy_name, subsys, event, args, pod',
    },
    {
      kind: 'baseline',
      file: 'baseline.yaml',
      text: '- cell: "*"\n  subject: lsm-file-open\n  reason: lsm-inactive\n- cell: "arm64-*"\n  subject: 7\n',
      load: loadBaseline,
      code: 'baseline-schema',
      at: [4, 3],
      field: '[1]',
      detail: '[1]: missing required field "reason" (and 1 more problem)',
    },
  ];

  for (const c of cases) {
    it(`names file, line, column and field in a ${c.kind}`, async () => {
      const file = write(c.file, c.text);
      const err = await inputError(() => c.load(file));
      expect({ code: err.code, file: err.file, at: [err.line, err.column], field: err.field, detail: err.detail }).toEqual({
        code: c.code,
        file,
        at: c.at,
        field: c.field,
        detail: c.detail,
      });
      expect(err.message).toBe(`${file}:${c.at[0]}:${c.at[1]}: ${c.detail}`);
      expect(err.exit).toBe(2);
    });
  }

  it('names file, line, column and field in a results line', async () => {
    const out = join(dir, 'out');
    const good = { cell: 'x86_64-6.1', lane: 'static', suite: 'static', subject: 'p', check: 'schema', status: 'pass', reason: null, evidence: {}, durationMs: 0 };
    const bad = { ...good, status: 'passed' };
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, RESULTS_FILE), `${JSON.stringify(good)}\n${JSON.stringify(bad)}\n`);
    const err = await inputError(() => readResultsDir(out));
    expect([err.code, err.line, err.column, err.field]).toEqual(['results-malformed', 2, JSON.stringify(bad).indexOf('"passed"') + 1, 'status']);
    expect(err.detail).toBe('not a check result: status: expected one of: pass, fail, skip, error (got "passed")');
  });

  it('names file, line, column and field of a policy problem (lint reports them all, in file order)', async () => {
    const file = join(EXTRA, 'docs/security-observability-with-ebpf/03_chapter/01_installation/elastic_keystore_fd_install.yaml');
    const { problems } = await readPolicies([file], { schema: CRD_DIR });
    expect(problems[0]).toMatchObject({ file, line: 27, column: 17, path: 'spec.kprobes[0].selectors[0].matchActions[0].action', reason: 'schema-invalid' });
  });

});
