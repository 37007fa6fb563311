/**
 * `run.json`: what a run was asked (matrix, policies and their hashes, lock, suites,
 * triggers, agent bundles), with which tools, and every cell's facts. Written once
 * the facts are known and before the first check, atomically; `table`, `baseline`
 * and `--resume` read it instead of guessing facts from cell ids.
 *
 * Invariant: `inputsSha256` hashes only what decides the verdicts (contents, not
 * paths), so two runs of the same inputs on two machines (or two shards of one run)
 * have the same one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomically } from './atomic-write.js';
import type { CellFacts } from './facts.js';
import { schemaValidator } from './schemas.js';
import { YamlInput } from './yaml-input.js';

export const RUN_FILE = 'run.json';

/** A file that decides verdicts: where it was given, and its content hash. */
export interface InputFile {
  path: string;
  sha256: string;
}

export interface RunInputs {
  /** null: the built-in default matrix. */
  matrix: InputFile | null;
  /** The `--cells` globs, or null for every cell of the matrix. */
  cells: string | null;
  suites: string[];
  /** Each policy file, named relative to the `--policies` root it was found under. */
  policies: { roots: string[]; files: InputFile[] };
  /** The TracingPolicy CRD source (`--schema`), as given. */
  schema: string | null;
  lock: InputFile | null;
  /** The trigger catalogue (the shipped one, or the files given with --triggers), when a suite runs triggers. */
  triggers: { source: 'catalogue' | 'files'; sha256: string } | null;
  /** Agent bundles and flags, when a suite runs an agent. */
  agent: {
    bundles: { arch: string; version: string; sha256: string }[];
    args: string[];
    boots: number | 'auto';
    /** The cluster suite's agent install and scenario. */
    cluster?: { chart: string | null; cri: boolean; criMount: 'file' | 'directory'; restartRuntime: 'containerd' | 'k3s' | null; values: string[] };
  } | null;
}

export interface RunManifest {
  schemaVersion: 1;
  bpfgate: string;
  startedAt: string;
  inputs: RunInputs;
  inputsSha256: string;
  /** node, and per platform its tools' version lines. */
  tools: Record<string, Record<string, string> | string>;
  cells: CellFacts[];
  /** A run of one shard (`--shard I/N`): which, and of what. */
  shard?: ShardRecord;
  /** A merged run (`bpfgate merge`): the shards it was made of, in shard order. */
  shards?: MergedShard[];
}

/** What a shard's run.json says of the split: enough for merge to find gaps and overlaps. */
export interface ShardRecord {
  /** 1-based, as in `--shard I/N`. */
  index: number;
  count: number;
  /** Every cell of the whole run, in matrix order: the same in every shard. */
  runCells: string[];
  /** The cells this shard ran. */
  cells: string[];
  /** Set once the shard's run ended (not interrupted): merge takes only finished shards. */
  finishedAt?: string;
}

/** One shard of a merged run: where it came from, when it ran, on which tools. */
export interface MergedShard {
  /** "I/N". */
  shard: string;
  /** The directory it was merged from, as given. */
  dir: string;
  startedAt: string;
  finishedAt: string;
  cells: string[];
  tools: Record<string, Record<string, string> | string>;
}

/**
 * The hash that says two runs were asked the same thing: the contents that decide
 * verdicts, not where they were read from (a shard run from another directory or
 * machine hashes the same).
 */
export function inputsHash(inputs: RunInputs): string {
  const decisive = {
    matrix: inputs.matrix?.sha256 ?? null,
    cells: inputs.cells,
    suites: inputs.suites,
    policies: inputs.policies.files,
    lock: inputs.lock?.sha256 ?? null,
    triggers: inputs.triggers,
    agent: inputs.agent,
  };
  return createHash('sha256').update(JSON.stringify(decisive)).digest('hex');
}

export async function writeRunManifest(outDir: string, manifest: RunManifest): Promise<void> {
  await writeAtomically(join(outDir, RUN_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** The run.json of an output directory; undefined when there is none (a run of bpfgate before 0.2). */
export async function readRunManifest(outDir: string): Promise<RunManifest | undefined> {
  const file = join(outDir, RUN_FILE);
  if (!existsSync(file)) return undefined;
  const input = await YamlInput.read(file, { missing: 'run-manifest-unreadable', syntax: 'run-manifest-malformed' }, 'run manifest', { dialect: 'json' });
  return input.validate(schemaValidator<RunManifest>('run'), 'run-manifest-malformed');
}
