/**
 * The policies suite on real kernels: hooks registered in the guest, triggers run
 * alone, hits counted. A handful of real corpus policies and triggers on three cells
 * that show a pass, lsm-inactive, trampoline-unsupported and a measured symbol-missing.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../core/check.js';
import { bpfgate, readResults, tempOut } from '../support/cli.js';
import { CRD_DIR, EXAMPLES, EXTRA, PROJECT_ROOT } from '../support/shared.js';

const CATALOGUE = join(PROJECT_ROOT, 'suites', 'triggers', 'catalogue');
const POLICIES = [
  join(EXAMPLES, 'lsm_file_open.yaml'),
  join(EXAMPLES, 'tcp-connect.yaml'),
  join(EXAMPLES, 'sys_setuid.yaml'),
  join(EXTRA, 'docs/security-observability-with-ebpf/04_chapter/01_cilium_tracing_policy/02_nsenter.yaml'),
];
const TRIGGERS = ['t1003-008-etc-passwd-and-shadow', 't1046-network-service-discovery', 't1611-escape-to-host'].map((t) => join(CATALOGUE, `${t}.yaml`));

describe('the policies suite on real kernels', () => {
  let results: CheckResult[];
  const verdict = (cell: string, policy: string) => {
    const r = results.find((x) => x.cell === cell && x.subject === policy && x.check === 'hooks');
    if (!r) throw new Error(`no hooks verdict for ${policy} on ${cell}`);
    return r;
  };

  beforeAll(async () => {
    const out = tempOut('policies');
    await bpfgate([
      'run', '--suite', 'policies', '--schema', CRD_DIR, '--policies', POLICIES.join(','), '--triggers', TRIGGERS.join(','),
      '--cells', 'x86_64-6.12,x86_64-6.12+nobpflsm,arm64-4k-6.1', '--out', out,
    ]);
    results = readResults(out);
  }, 600_000);

  it('passes an LSM policy on x86_64 6.12, fired by the trigger that reads /etc/passwd', () => {
    const r = verdict('x86_64-6.12', 'lsm-file-open');
    expect(r.status).toBe('pass');
    expect(JSON.stringify(r.evidence)).toContain('t1003-008-etc-passwd-and-shadow');
  });

  it('passes tcp_connect hooks fired by the network discovery trigger', () => {
    const r = verdict('x86_64-6.12', 'connect');
    expect(r.status).toBe('pass');
    expect(JSON.stringify(r.evidence)).toContain('t1046-network-service-discovery');
  });

  it('finds the LSM policy inactive where bpf is not an active LSM', () => {
    expect(verdict('x86_64-6.12+nobpflsm', 'lsm-file-open')).toMatchObject({ status: 'fail', reason: 'lsm-inactive' });
  });

  it('finds LSM policies without trampolines on arm64 6.1', () => {
    expect(verdict('arm64-4k-6.1', 'lsm-file-open')).toMatchObject({ status: 'fail', reason: 'trampoline-unsupported' });
  });

  it('measures an __x64_sys_ policy as symbol-missing on arm64, refused by the guest kernel', () => {
    const r = verdict('arm64-4k-6.1', 'deny-nsenter');
    expect(r).toMatchObject({ status: 'fail', reason: 'symbol-missing' });
    expect(r.evidence.missing).toBe('kprobe:__x64_sys_setns');
    expect(String(r.evidence.kernelSays)).toMatch(/No such file|Invalid argument/);
    expect(verdict('x86_64-6.12', 'deny-nsenter').reason).not.toBe('symbol-missing');
  });

  it('records what each trigger fired on each cell', () => {
    const coverage = results.filter((r) => r.check === 'coverage' && r.cell === 'x86_64-6.12');
    expect(coverage.map((r) => r.subject).sort()).toEqual(TRIGGERS.map((t) => t.split('/').pop()!.replace('.yaml', '')).sort());
    const net = coverage.find((r) => r.subject === 't1046-network-service-discovery')!;
    expect(Object.keys(net.evidence.fired as object)).toContain('kprobe:tcp_connect');
  });
});
