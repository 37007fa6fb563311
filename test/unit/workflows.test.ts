/**
 * The GitHub workflows, read as GitHub reads them: YAML that parses, valid against the
 * workflow schema (SchemaStore's, through action-validator), a reusable workflow whose
 * fan-out, artifacts and merge fit together, callers that pass only inputs it declares,
 * and bpfgate options that exist.
 */
import { validateWorkflow } from '@action-validator/core';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { PROJECT_ROOT } from '../support/shared.js';

const DIR = join(PROJECT_ROOT, '.github', 'workflows');
const REUSABLE = 'bpfgate-sharded.yml';

interface Step { id?: string; name?: string; uses?: string; run?: string; if?: string; env?: Record<string, unknown>; with?: Record<string, unknown> }
interface Job { needs?: string | string[]; if?: string; uses?: string; with?: Record<string, unknown>; strategy?: { 'fail-fast'?: boolean; matrix?: Record<string, unknown> }; outputs?: Record<string, string>; steps?: Step[]; 'runs-on'?: string }
interface Input { type: string; required?: boolean; default?: unknown }
interface Workflow { name: string; on: Record<string, unknown>; jobs: Record<string, Job> }

function read(file: string): Workflow {
  const doc = parseDocument(readFileSync(join(DIR, file), 'utf8'), { prettyErrors: true, uniqueKeys: true });
  expect(doc.errors.map(String), file).toEqual([]);
  expect(doc.warnings.map(String), file).toEqual([]);
  return doc.toJS() as Workflow;
}

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const reusable = read(REUSABLE);
const call = reusable.on.workflow_call as { inputs: Record<string, Input>; outputs: Record<string, { value: string }> };
const needsOf = (job: Job) => (job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs]);
const stepRunning = (job: Job, command: RegExp) => {
  const step = job.steps?.find((s) => command.test(s.run ?? ''));
  expect(step, String(command)).toBeDefined();
  return step!;
};
/** The options a run script gives bpfgate (`set -- ... --flag ...`). */
const flagsOf = (script: string) => [...script.matchAll(/set -- .*$/gm)].flatMap((m) => [...m[0].matchAll(/(?<=\s)--[a-z][a-z-]*/g)].map((f) => f[0]));
const CLI_SOURCE = readFileSync(join(PROJECT_ROOT, 'cli', 'main.ts'), 'utf8');

describe('the workflows', () => {
  it.each(files)('%s is valid YAML with a name, triggers and jobs', (file) => {
    const wf = read(file);
    expect(typeof wf.name).toBe('string');
    expect(Object.keys(wf.on).length).toBeGreaterThan(0);
    expect(Object.keys(wf.jobs).length).toBeGreaterThan(0);
    for (const [id, job] of Object.entries(wf.jobs)) {
      for (const need of needsOf(job)) expect(Object.keys(wf.jobs), `${file}: ${id} needs ${need}`).toContain(need);
      expect(job.uses !== undefined || (job['runs-on'] !== undefined && (job.steps?.length ?? 0) > 0), `${file}: ${id} runs somewhere`).toBe(true);
    }
  });

  it.each(files)('%s is valid against the workflow schema', (file) => {
    expect(validateWorkflow(readFileSync(join(DIR, file), 'utf8')).errors, file).toEqual([]);
  });

  it('the schema check refuses what GitHub refuses (a misspelt key, a job with nowhere to run)', () => {
    const job = (body: string) => validateWorkflow(`name: x\non: push\njobs:\n  a:\n${body}`).errors;
    expect(job('    runs-on: ubuntu-latest\n    steps:\n      - run: "true"\n')).toEqual([]);
    expect(JSON.stringify(job('    runs-on: ubuntu-latest\n    stepz:\n      - run: "true"\n'))).toContain("Additional property 'stepz' is not allowed");
    expect(job('    steps:\n      - run: "true"\n').length).toBeGreaterThan(0);
  });

  it.each(files)('%s refers only to jobs, steps and inputs it has', (file) => {
    const wf = read(file);
    const text = readFileSync(join(DIR, file), 'utf8');
    const inputs = Object.keys((wf.on.workflow_call as { inputs?: object } | undefined)?.inputs ?? {});
    for (const [, name] of text.matchAll(/inputs\.([\w-]+)/g)) expect(inputs, `${file}: inputs.${name}`).toContain(name);
    for (const [id, job] of Object.entries(wf.jobs)) {
      const own = JSON.stringify(job);
      for (const [, need] of own.matchAll(/needs\.([\w-]+)\./g)) expect(needsOf(job), `${file}: ${id} reads needs.${need}`).toContain(need);
      const ids = (job.steps ?? []).map((s) => s.id).filter(Boolean);
      for (const [, step] of own.matchAll(/steps\.([\w-]+)\./g)) expect(ids, `${file}: ${id} reads steps.${step}`).toContain(step);
    }
  });
});

describe('the reusable sharded workflow', () => {
  it('is called with the matrix file, the policies, the shard count and the baseline', () => {
    expect(Object.keys(call.inputs)).toEqual(expect.arrayContaining(['matrix', 'policies', 'schema', 'suites', 'cells', 'lock', 'baseline', 'shards']));
    expect(call.inputs.policies!.required).toBe(true);
    expect(call.inputs.shards!.type).toBe('number');
    expect(call.outputs['exit-code']!.value).toBe('${{ jobs.merge.outputs.exit-code }}');
  });

  it('fans out one job per shard index, each running `bpfgate run --shard I/N` into the artifact it uploads', () => {
    const { plan, shard } = reusable.jobs;
    expect(plan?.outputs?.shards).toBe('${{ steps.shards.outputs.list }}');
    // The plan's list is [1,...,N]: run its script for N=4.
    const script = stepRunning(plan!, /GITHUB_OUTPUT/).run!;
    expect(script.replaceAll('"$N"', '4').match(/list=\[\$\(seq -s, 1 4\)\]/)).not.toBeNull();
    expect(needsOf(shard!)).toEqual(['plan']);
    expect(shard!.strategy?.['fail-fast']).toBe(false);
    expect(shard!.strategy?.matrix?.shard).toBe('${{ fromJSON(needs.plan.outputs.shards) }}');
    const run = stepRunning(shard!, /node dist\/cli\/main\.js run /);
    expect(run.env?.SHARD).toBe('${{ matrix.shard }}/${{ inputs.shards }}');
    // Only the merge writes the job summary.
    expect(run.env?.GITHUB_ACTIONS).toBe('false');
    expect(flagsOf(run.run!)).toEqual(['--shard', '--suite', '--policies', '--out', '--matrix', '--schema', '--cells', '--lock']);
    const out = /--out (\S+)/.exec(run.run!)![1];
    const upload = shard!.steps!.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
    expect(upload?.with?.path).toBe(out);
    expect(upload?.with?.name).toBe('${{ inputs.name }}-shard-${{ matrix.shard }}');
    expect(upload?.if).toMatch(/!cancelled\(\)/);
    // x86_64 guests use KVM where the runner has it.
    expect(shard!.steps!.some((s) => /\/dev\/kvm/.test(s.name ?? '') && /kvm/.test(s.run ?? ''))).toBe(true);
  });

  it('merges every shard it downloads with `bpfgate merge`, gates, and publishes one report', () => {
    const { merge } = reusable.jobs;
    expect(needsOf(merge!)).toContain('shard');
    expect(merge!.if).toMatch(/!cancelled\(\)/);
    const download = merge!.steps!.find((s) => s.uses?.startsWith('actions/download-artifact@'));
    expect(download?.with?.pattern).toBe('${{ inputs.name }}-shard-*');
    const step = stepRunning(merge!, /node dist\/cli\/main\.js merge /);
    expect(step.id).toBe('merge');
    expect(step.run).toMatch(new RegExp(`set -- ${String(download?.with?.path)}/\\* --out bpfgate-out`));
    expect(flagsOf(step.run!)).toEqual(['--out', '--baseline']);
    expect(step.run).toMatch(/exit-code=\$rc" >> "\$GITHUB_OUTPUT"/);
    expect(step.env?.GITHUB_ACTIONS).toBeUndefined();
    expect(merge!.outputs?.['exit-code']).toBe('${{ steps.merge.outputs.exit-code }}');
    const steps = merge!.steps!;
    const after = steps.slice(steps.indexOf(step) + 1);
    expect(after.find((s) => s.uses?.startsWith('actions/upload-artifact@'))?.with).toMatchObject({ name: '${{ inputs.name }}-report', path: 'bpfgate-out' });
    expect(after.find((s) => s.uses?.startsWith('actions/upload-pages-artifact@'))?.with?.path).toBe('bpfgate-out');
  });

  it('gives bpfgate only options its command line has', () => {
    const scripts = Object.values(reusable.jobs).flatMap((j) => (j.steps ?? []).map((s) => s.run ?? ''));
    const flags = new Set(scripts.flatMap(flagsOf));
    expect(flags.size).toBeGreaterThan(5);
    for (const flag of flags) expect(CLI_SOURCE, flag).toMatch(new RegExp(`[oO]ption\\('${flag} `));
  });
});

describe('the callers', () => {
  const callers = files.flatMap((file) => Object.entries(read(file).jobs).filter(([, j]) => j.uses === `./.github/workflows/${REUSABLE}`).map(([id, job]) => ({ file, id, job })));

  it('policy-gate and compat-table call the reusable workflow', () => {
    expect(callers.map((c) => c.file).sort()).toEqual(['compat-table.yml', 'policy-gate.yml']);
  });

  it.each(['compat-table.yml', 'policy-gate.yml'])('%s passes the required inputs and only declared ones, of their types', (file) => {
    for (const { job } of callers.filter((c) => c.file === file)) {
      const given = job.with ?? {};
      for (const [name, value] of Object.entries(given)) {
        const input = call.inputs[name];
        expect(input, `${file}: with.${name}`).toBeDefined();
        expect(typeof value, `${file}: with.${name}`).toBe(input!.type);
      }
      for (const [name, input] of Object.entries(call.inputs)) if (input.required) expect(given, `${file}: ${name}`).toHaveProperty(name);
    }
  });

  it('policy-gate gates on its baseline; compat-table publishes the merged report with the reproductions', () => {
    const gate = callers.find((c) => c.file === 'policy-gate.yml')!.job.with!;
    expect(gate.baseline).toBe('baselines/gate.yaml');
    expect(gate.gate ?? call.inputs.gate!.default).toBe(true);
    const compat = read('compat-table.yml');
    const matrix = callers.find((c) => c.file === 'compat-table.yml')!;
    expect(matrix.job.with?.gate).toBe(false);
    const site = compat.jobs.site!;
    expect(needsOf(site)).toEqual(expect.arrayContaining([matrix.id, 'repro']));
    const downloaded = site.steps!.filter((s) => s.uses?.startsWith('actions/download-artifact@')).map((s) => s.with?.name);
    expect(downloaded).toContain(`${String(matrix.job.with?.name)}-report`);
    const uploads = compat.jobs.repro!.steps!.filter((s) => s.uses?.startsWith('actions/upload-artifact@')).map((s) => s.with?.name);
    for (const name of downloaded.filter((n) => n !== `${String(matrix.job.with?.name)}-report`)) expect(uploads).toContain(name);
    expect(site.steps!.some((s) => s.uses?.startsWith('actions/upload-pages-artifact@'))).toBe(true);
    expect(needsOf(compat.jobs.publish!)).toEqual(['site']);
  });
});
