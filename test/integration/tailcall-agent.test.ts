/**
 * The tail-call attach-type finding with a real agent: Tetragon's multi-kprobe sensor on
 * Debian's 6.12 kernel, run as users run it (no agent flags). Needs a release bundle
 * (BPFGATE_TETRAGON_BUNDLE, an amd64 tarball or its directory); skips, saying so, without.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfgate, readResults, tempOut } from '../support/cli.js';
import { CRD_DIR, EXAMPLES, PROJECT_ROOT } from '../support/shared.js';

const BUNDLE = process.env.BPFGATE_TETRAGON_BUNDLE;
const HAVE_BUNDLE = Boolean(BUNDLE && existsSync(BUNDLE));
const CATALOGUE = join(PROJECT_ROOT, 'suites', 'triggers', 'catalogue');

describe.skipIf(!HAVE_BUNDLE)('tailcall-attach-type with Tetragon (needs BPFGATE_TETRAGON_BUNDLE)', () => {
  it('puts the agent\'s own refusal beside the kernel\'s in the reproduction', async () => {
    const out = tempOut('tailcall-agent');
    const run = await bpfgate(['repro', 'tailcall-attach-type', '--tetragon', BUNDLE!, '--cells', 'x86_64-6.12', '--out', out]);
    expect(run.stdout).toContain('tailcall-attach-type: reproduced');
    expect(run.stdout).toMatch(/agent v\d[^ ]* on x86_64-6\.12 \(kprobe\.multi, no flags\): tailcall-attach-type: .*bpf_multi_kprobe_v612\.o.*load program: invalid argument/);
    expect(run.exitCode).toBe(0);
  }, 900_000);

  it('runs the lane with no flags, reports the refusal as its reason, and the prediction check saw it coming', async () => {
    const out = tempOut('tailcall-lane');
    await bpfgate([
      'run', '--suite', 'policies,tetragon', '--tetragon', BUNDLE!, '--cells', 'x86_64-6.12', '--schema', CRD_DIR,
      '--policies', ['tcp-connect.yaml', 'lsm_file_open.yaml'].map((f) => join(EXAMPLES, f)).join(','),
      '--triggers', join(CATALOGUE, 't1046-network-service-discovery.yaml'), '--out', out,
    ]);
    const results = readResults(out);
    const check = (subject: string, name: string) => results.find((r) => r.subject === subject && r.check === name);
    expect(check('connect', 'tetragon:load')).toMatchObject({ status: 'fail', reason: 'tailcall-attach-type', evidence: { kprobeMulti: true } });
    expect(check('connect', 'hooks')).toMatchObject({ status: 'pass', evidence: { kprobeMultiTailCalls: 'refused' } });
    expect(check('connect', 'prediction')).toMatchObject({ status: 'pass', evidence: { predicted: 'tailcall-attach-type' } });
    // A policy with no kprobe is untouched by it.
    expect(check('lsm-file-open', 'tetragon:load')?.status).toBe('pass');
    expect(check('lsm-file-open', 'prediction')).toMatchObject({ status: 'pass', evidence: { predicted: 'loads' } });
  }, 900_000);
});
