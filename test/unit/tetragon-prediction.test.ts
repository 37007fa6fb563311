/**
 * Prediction against reality on a real run: the kernel lane's verdict and the agent's
 * load state of every corpus policy on x86_64-6.12 (see test/fixtures/tetragon/README.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { loadDefaultMatrix } from '../../matrix/default.js';
import { comparePrediction } from '../../suites/tetragon/prediction.js';
import { PROJECT_ROOT } from '../support/shared.js';

const results: CheckResult[] = readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon', 'x86_64-6.12-corpus.results.jsonl'), 'utf8')
  .trim().split('\n').map((l) => JSON.parse(l) as CheckResult);

describe('prediction against reality on the whole corpus', async () => {
  const cell = (await loadDefaultMatrix()).cells.find((c) => c.id === 'x86_64-6.12')!;
  const predictions = comparePrediction(cell, results);
  const of = (subject: string) => predictions.find((p) => p.subject === subject);
  const load = (subject: string) => results.find((r) => r.subject === subject && r.check === 'tetragon:load')!;

  it('compares every policy both lanes gave a verdict on, and only those', () => {
    const loads = results.filter((r) => r.check === 'tetragon:load');
    const judged = loads.filter((l) => l.status !== 'error' && results.some((r) => r.subject === l.subject && r.check === 'hooks' && r.status !== 'error'));
    expect(predictions.map((p) => p.subject).sort()).toEqual(judged.map((l) => l.subject).sort());
    // The policy the load budget never reached has no agent verdict to compare.
    const unreached = loads.find((l) => l.status === 'error')!;
    expect(unreached.reason).toBe('infra-boot-timeout');
    expect(of(unreached.subject)).toBeUndefined();
  });

  it('agrees where both refuse the policy for the same missing helper', () => {
    const subject = 'sys-linkat-passwd@../shared/corpus/tetragon-examples/hardlink-override.yaml';
    expect(results.find((r) => r.subject === subject && r.check === 'hooks')?.reason).toBe('override-unsupported');
    expect(String(load(subject).evidence.tetraAdd)).toContain('bpf_override_return helper not available');
    expect(of(subject)).toMatchObject({ status: 'pass' });
  });

  it('reports the policies the agent refused where the kernel lane said they work, with the agent\'s words', () => {
    const override = of('security-override');
    expect(override).toMatchObject({ status: 'fail', reason: 'load-error' });
    expect(JSON.stringify(override!.evidence)).toContain('override action not supported');
    expect((override!.evidence.kernelLane as { status: string }).status).toBe('pass');
    // Every disagreement names both sides.
    for (const p of predictions.filter((x) => x.status === 'fail')) {
      expect(p.evidence).toHaveProperty('kernelLane');
      expect(p.evidence).toHaveProperty('tetragon');
    }
  });

  it('agrees on the policies that loaded where the kernel lane saw their hooks fire', () => {
    expect(of('lsm-file-open')).toMatchObject({ status: 'pass' });
    expect(load('lsm-file-open').status).toBe('pass');
  });
});
