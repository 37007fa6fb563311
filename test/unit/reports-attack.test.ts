/**
 * attack-layer.json: an ATT&CK Navigator layer (format 4.5) scored by what the policies
 * caught of each technique's triggers, on real runs: the kernel lane of the default
 * matrix (hooks fired) and a two-node cluster (the agent's events).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import type { RunManifest } from '../../core/run-manifest.js';
import { attackLayer, hintFired, LAYER_VERSIONS, renderAttackLayer, type AttackLayer } from '../../reports/attack.js';
import { buildModel, type TriggerInfo } from '../../reports/model.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { TACTICS } from '../../suites/triggers/model.js';
import { fixtureManifest, fixtureResults, REPORT_FIXTURES } from '../support/report-fixture.js';

const catalogue: TriggerInfo[] = (await loadTriggerCatalogue()).map((t) => ({ id: t.id, technique: t.technique, name: t.name, tactic: t.tactic, hooks: t.hooks }));
const techniqueOf = (id: string) => catalogue.find((t) => t.id === id)!.technique;

function fixture(name: string): { results: CheckResult[]; manifest: RunManifest } {
  const results = readFileSync(join(REPORT_FIXTURES, `${name}.results.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as CheckResult);
  return { results, manifest: JSON.parse(readFileSync(join(REPORT_FIXTURES, `${name}.run.json`), 'utf8')) as RunManifest };
}

const kernel = attackLayer(buildModel(fixtureResults(), fixtureManifest().cells, { triggers: catalogue, run: { bpfgate: '0.1.0', startedAt: fixtureManifest().startedAt } }));
const cluster = (() => {
  const { results, manifest } = fixture('cluster');
  return attackLayer(buildModel(results, manifest.cells, { triggers: catalogue }));
})();

/** The layer format 4.5, field by field (layers/LAYERFORMATv4_5.md of the Navigator). */
function expectLayerFormat(layer: AttackLayer): void {
  const json = JSON.parse(JSON.stringify(layer)) as Record<string, unknown>;
  expect(json.name).toBeTypeOf('string');
  expect(json.versions).toEqual({ attack: expect.stringMatching(/^\d+(\.\d+)?$/), navigator: expect.stringMatching(/^\d+\.\d+\.\d+$/), layer: '4.5' });
  const [major, minor] = String((json.versions as { navigator: string }).navigator).split('.').map(Number);
  expect(major! > 4 || (major === 4 && minor! >= 9), 'navigator must be at least 4.9.0').toBe(true);
  expect(json.domain).toBe('enterprise-attack');
  expect([0, 1, 2, 3]).toContain(json.sorting);
  expect(json.filters).toEqual({ platforms: ['Linux'] });
  const gradient = json.gradient as { colors: string[]; minValue: number; maxValue: number };
  expect(gradient.colors.length).toBeGreaterThanOrEqual(2);
  for (const c of gradient.colors) expect(c).toMatch(/^#[0-9a-f]{6}$/i);
  expect(gradient.maxValue).toBeGreaterThan(gradient.minValue);
  for (const item of json.legendItems as { label: unknown; color: unknown }[]) {
    expect(item.label).toBeTypeOf('string');
    expect(item.color).toMatch(/^#[0-9a-f]{6}$/i);
  }
  expect(['side', 'flat', 'mini']).toContain((json.layout as { layout: string }).layout);
  for (const t of json.techniques as Record<string, unknown>[]) {
    expect(t.techniqueID).toMatch(/^T\d{4}(\.\d{3})?$/);
    expect(TACTICS).toContain(t.tactic);
    expect(t.enabled).toBeTypeOf('boolean');
    expect(t.comment).toBeTypeOf('string');
    if ('score' in t) {
      expect(Number.isInteger(t.score)).toBe(true);
      expect(t.score).toBeGreaterThanOrEqual(gradient.minValue);
      expect(t.score).toBeLessThanOrEqual(gradient.maxValue);
    }
    for (const m of t.metadata as Record<string, unknown>[]) {
      if ('divider' in m) expect(m).toEqual({ divider: true });
      else expect(Object.keys(m).sort()).toEqual(['name', 'value']);
    }
  }
  for (const m of json.metadata as Record<string, unknown>[]) expect(Object.keys(m).sort()).toEqual(['name', 'value']);
}

describe('the ATT&CK Navigator layer', () => {
  it('is a layer of format 4.5 for the enterprise domain', () => {
    expect(kernel.versions).toEqual(LAYER_VERSIONS);
    expectLayerFormat(kernel);
    expectLayerFormat(cluster);
    expect(JSON.parse(renderAttackLayer(buildModel([], [], { triggers: catalogue })))).toMatchObject({ domain: 'enterprise-attack', versions: { layer: '4.5' } });
  });

  it('has every technique of the trigger catalogue once per tactic, unscored where it did not run', () => {
    const expected = [...new Set(catalogue.map((t) => `${t.technique} ${t.tactic}`))].sort();
    expect(kernel.techniques.map((t) => `${t.techniqueID} ${t.tactic}`).sort()).toEqual(expected);
    const ran = new Set(fixtureResults().map((r) => r.subject));
    const notRun = catalogue.filter((t) => !catalogue.some((u) => u.technique === t.technique && u.tactic === t.tactic && ran.has(u.id)));
    expect(notRun.length).toBeGreaterThan(40);
    for (const t of notRun) {
      const layerTechnique = kernel.techniques.find((x) => x.techniqueID === t.technique && x.tactic === t.tactic)!;
      expect(layerTechnique.score).toBeUndefined();
      expect(layerTechnique.comment).toBe('In the trigger catalogue; not run in this run.');
    }
  });

  it('scores a technique by the cells where its hooks fired on the kernel lane, with each cell in the metadata', () => {
    const t = kernel.techniques.find((x) => x.techniqueID === techniqueOf('t1059-004-unix-shell'))!;
    const cells = fixtureManifest().cells.map((c) => c.cell);
    expect(t.score).toBe(100);
    for (const cell of cells) expect(t.metadata).toContainEqual({ name: cell, value: expect.stringMatching(/^caught: kernel: .* fired$/) });
    expect(t.comment).toMatch(/^Caught in \d+ of \d+ trigger runs \(.*t1059-004-unix-shell.*\)\./);
  });

  it('counts a hint as fired under the symbol the arch attaches it as', () => {
    expect(hintFired('kprobe:sys_setns', ['kprobe:__arm64_sys_setns'])).toBe(true);
    expect(hintFired('kprobe:sys_setns', ['kprobe:__x64_sys_setns'])).toBe(true);
    expect(hintFired('kprobe:sys_setns', ['kprobe:__x64_sys_setuid'])).toBe(false);
    expect(hintFired('lsm:file_open', ['kprobe:bpf_lsm_file_open'])).toBe(true);
    expect(hintFired('kprobe:security_file_open', ['kretprobe:security_file_open'])).toBe(true);
    expect(hintFired('tracepoint:sched/sched_process_exec', ['tracepoint:sched/sched_process_exec'])).toBe(true);
    // An exec every policy sees is not the technique's own hook.
    expect(hintFired('kprobe:sys_ptrace', ['tracepoint:sched/sched_process_exec', 'kprobe:security_bprm_check'])).toBe(false);
  });

  it('scores the agent lanes by the events they exported: caught on one node and not on the other is 50', () => {
    const setuid = cluster.techniques.find((x) => x.techniqueID === techniqueOf('t1548-001-setuid-and-setgid'))!;
    expect(setuid.score).toBe(50);
    expect(setuid.metadata).toContainEqual({ name: 'x86_64-6.12', value: 'caught: agent: events matched' });
    expect(setuid.metadata).toContainEqual({ name: 'arm64-16k-6.12', value: 'missed: agent: no-events' });
    expect(setuid.comment).toContain('Caught on x86_64-6.12. Missed on arm64-16k-6.12.');
    // A trigger no enabled policy watches on either node gave no answer: unscored, and it says so.
    const clock = cluster.techniques.find((x) => x.techniqueID === techniqueOf('t1562-shift-system-clock'))!;
    expect(clock.score).toBeUndefined();
    expect(clock.comment).toMatch(/no lane answered/);
  });
});
