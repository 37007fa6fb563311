/**
 * Loading trigger files, in stages, each with its own error code:
 * read (trigger-missing) -> parse (trigger-yaml) -> schema (trigger-schema, the JSON
 * Schema that ships in suites/triggers/schema/) -> meaning of one file
 * (trigger-invalid: id equals the file name, marker used in the steps, hook hints
 * well formed for their kind, expectation fields that fit their event type) ->
 * meaning across files (trigger-duplicate: ids and markers unique, no marker inside
 * another). Every error is an InputError naming the file, line, column, field path
 * and what was expected; the first problem found, in file order, is thrown.
 * Invariant: a loaded set is non-empty and satisfies every check above.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { assetPath } from '../../core/assets.js';
import { InputError } from '../../core/errors.js';
import { SCHEMA_FILES, schemaValidator } from '../../core/schemas.js';
import { YamlInput, type FieldPath } from '../../core/yaml-input.js';
import { parseHookHint, type ExpectedEventType, type Trigger, type TriggerSpec } from './model.js';

/** The catalogue that ships with bpfgate: one file per technique. */
export const TRIGGER_CATALOGUE_DIR = assetPath('suites', 'triggers', 'catalogue');

/** The JSON Schema of a trigger file (also referenced by each file's yaml-language-server comment). */
export const TRIGGER_SCHEMA_FILE = SCHEMA_FILES.trigger;

const TRIGGER_FILE = /\.ya?ml$/;

/** Load the shipped catalogue, or every *.yaml / *.yml file of `dir` (not recursive), sorted by name. */
export async function loadTriggerCatalogue(dir: string = TRIGGER_CATALOGUE_DIR): Promise<Trigger[]> {
  return loadTriggerFiles([dir]);
}

/**
 * Load a user's own triggers: files, or directories whose *.yaml / *.yml files are
 * read (not recursive, sorted by name). Files keep the order given; a file named
 * twice is loaded once.
 */
export async function loadTriggerFiles(paths: readonly string[]): Promise<Trigger[]> {
  const files: string[] = [];
  for (const p of paths) {
    for (const file of await expandPath(resolve(p))) if (!files.includes(file)) files.push(file);
  }
  if (files.length === 0) {
    throw new InputError('trigger-missing', paths.map((p) => resolve(p)).join(', ') || '(no path)', {}, 'expected at least one trigger file (*.yaml or *.yml)');
  }
  const loaded: LoadedFile[] = [];
  for (const file of files) loaded.push(await loadOne(file));
  const duplicate = crossFileProblem(loaded);
  if (duplicate) throw duplicate;
  return loaded.map(({ spec, input }) => {
    const { line, column } = input.locate([]);
    return { ...spec, file: input.file, source: { file: input.file, line, column } };
  });
}

interface LoadedFile {
  spec: TriggerSpec;
  input: YamlInput;
}

async function expandPath(path: string): Promise<string[]> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (cause) {
    throw new InputError('trigger-missing', path, {}, `expected a trigger file or directory: ${(cause as Error).message}`, cause);
  }
  if (!isDir) return [path];
  const names = (await readdir(path)).filter((n) => TRIGGER_FILE.test(n)).sort();
  return names.map((n) => join(path, n));
}

async function loadOne(file: string): Promise<LoadedFile> {
  const input = await YamlInput.read(file, { missing: 'trigger-missing', syntax: 'trigger-yaml' }, 'trigger file');
  const spec = input.validate(schemaValidator<TriggerSpec>('trigger'), 'trigger-schema');
  const located = fileProblems(spec, file).map((p) => ({ p, pos: input.locate(p.path, p.atKey ? 'key' : 'value') }));
  located.sort((a, b) => a.pos.line - b.pos.line || a.pos.column - b.pos.column);
  const first = located[0]?.p;
  if (first) throw input.error('trigger-invalid', first.path, first.message, { atKey: first.atKey });
  return { spec, input };
}

interface Problem {
  path: FieldPath;
  message: string;
  /** Place the error on the key (an unknown or misplaced field) rather than its value. */
  atKey?: boolean;
}

const MARKER_REFERENCE = /\$\{?BPFGATE_MARKER\b/;

/** Facts about one trigger file that its schema cannot state. */
function fileProblems(spec: TriggerSpec, file: string): Problem[] {
  const out: Problem[] = [];
  const stem = basename(file, extname(file));
  if (spec.id !== stem) {
    out.push({ path: ['id'], message: `expected "${stem}": a trigger's id is its file name without the extension (got "${spec.id}")` });
  }
  if (!spec.steps.includes(spec.marker) && !MARKER_REFERENCE.test(spec.steps)) {
    out.push({
      path: ['steps'],
      message: `expected the marker "${spec.marker}" (or $BPFGATE_MARKER) in the steps, in a path or an argv, so that events can be tied back to this trigger`,
    });
  }
  spec.hooks.forEach((hint, i) => {
    const parsed = parseHookHint(hint);
    if ('problem' in parsed) out.push({ path: ['hooks', i], message: parsed.problem });
  });
  spec.expect.forEach((e, i) => out.push(...expectationProblems(e as unknown as Record<string, unknown>, ['expect', i])));
  return out;
}

/** The fields each event type takes; `type` is always allowed. */
const EXPECT_FIELDS: Record<ExpectedEventType, { required: string[]; optional: string[] }> = {
  process_exec: { required: [], optional: ['binary', 'argumentsContains'] },
  process_kprobe: { required: ['function_name'], optional: ['policy_name', 'args', 'binary', 'argumentsContains'] },
  process_lsm: { required: ['function_name'], optional: ['policy_name', 'args', 'binary', 'argumentsContains'] },
  process_tracepoint: { required: ['subsys', 'event'], optional: ['policy_name', 'args', 'binary', 'argumentsContains'] },
};

function expectationProblems(e: Record<string, unknown>, at: FieldPath): Problem[] {
  const out: Problem[] = [];
  const type = e.type as ExpectedEventType;
  const { required, optional } = EXPECT_FIELDS[type];
  const known = ['type', ...required, ...optional];
  for (const field of Object.keys(e)) {
    if (!known.includes(field)) {
      out.push({ path: [...at, field], atKey: true, message: `a ${type} expectation has no field "${field}"; expected one of: ${known.join(', ')}` });
    }
  }
  for (const field of required) {
    if (e[field] === undefined) out.push({ path: at, message: `missing required field "${field}" for a ${type} expectation` });
  }
  // An exec expectation with no predicate would match every exec of the run.
  if (type === 'process_exec' && e.binary === undefined && e.argumentsContains === undefined) {
    out.push({ path: at, message: 'expected binary or argumentsContains: a process_exec expectation with neither matches every exec' });
  }
  const args = Array.isArray(e.args) ? (e.args as Record<string, unknown>[]) : [];
  args.forEach((a, i) => {
    const where = [...at, 'args', i];
    const hasEquals = a.equals !== undefined;
    const hasContains = a.contains !== undefined;
    if (hasEquals === hasContains) {
      out.push({ path: where, message: 'expected exactly one of: equals, contains' });
    } else if (hasEquals && !['string', 'number', 'boolean'].includes(typeof a.equals)) {
      out.push({ path: [...where, 'equals'], message: `expected a string, number or boolean (got ${Array.isArray(a.equals) ? 'a list' : a.equals === null ? 'null' : 'a mapping'})` });
    }
  });
  return out;
}

/** Ids and markers across files: the first clash in file order, reported on the later file. */
function crossFileProblem(loaded: readonly LoadedFile[]): InputError | undefined {
  for (const [i, later] of loaded.entries()) {
    for (const earlier of loaded.slice(0, i)) {
      const where = (path: FieldPath) => {
        const { line, column } = earlier.input.locate(path);
        return `${earlier.input.file}:${line}:${column}`;
      };
      if (later.spec.id === earlier.spec.id) {
        return later.input.error('trigger-duplicate', ['id'], `expected a unique id: "${later.spec.id}" is also the id of ${where(['id'])}`);
      }
      const [a, b] = [later.spec.marker, earlier.spec.marker];
      if (a === b) {
        return later.input.error('trigger-duplicate', ['marker'], `expected a unique marker: "${a}" is also the marker of ${where(['marker'])}`);
      }
      // A marker inside another would tie one trigger's events to both.
      if (a.includes(b) || b.includes(a)) {
        return later.input.error(
          'trigger-duplicate',
          ['marker'],
          `expected a marker that neither contains nor is part of another: "${a}" and "${b}", the marker of ${where(['marker'])}, overlap, so their events could not be told apart`,
        );
      }
    }
  }
  return undefined;
}
