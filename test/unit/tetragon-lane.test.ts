import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../suites/tetragon/bundle.js';
import { readPolicies } from '../../policy/index.js';
import { readExport } from '../../suites/tetragon/events.js';
import { agentNames } from '../../suites/tetragon/plan.js';
import { agentErrors, loadVerdict, parsePolicyList } from '../../suites/tetragon/load-state.js';
import { findMatch, markerOf } from '../../suites/tetragon/match.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { tempOut } from '../support/cli.js';
import { CORPUS, PROJECT_ROOT } from '../support/shared.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'tetragon');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

describe('the agent\'s load state, from a real tetra tracingpolicy list', () => {
  const states = parsePolicyList(fixture('x86_64-6.12-lsm-file-open.tp-list.json'));

  it('passes the enabled policy and fails the refused ones with the agent\'s words', () => {
    expect(states.map((s) => [s.name, s.state])).toEqual([
      ['lsm-file-open', 'TP_STATE_ENABLED'],
      ['syscalls', 'TP_STATE_LOAD_ERROR'],
      ['connect', 'TP_STATE_LOAD_ERROR'],
    ]);
    expect(loadVerdict(states[0])).toEqual({ status: 'pass', reason: null });
    expect(loadVerdict(states[1])).toEqual({ status: 'fail', reason: 'tailcall-attach-type' });
    expect(states[1]!.error).toContain('bpf_multi_kprobe_v612.o');
    expect(loadVerdict({ ...states[1]!, error: 'policyfilter is disabled' })).toEqual({ status: 'fail', reason: 'load-error' });
  });

  it('fails a policy the agent never listed, and a partially enabled one', () => {
    expect(loadVerdict(undefined)).toEqual({ status: 'fail', reason: 'load-error' });
    const [partial] = parsePolicyList('{"policies":[{"name":"p","state":"TP_STATE_PARTIALLY_ENABLED"}]}');
    expect(loadVerdict(partial)).toEqual({ status: 'fail', reason: 'partially-enabled' });
  });

  it('charges a policy still loading when the guest\'s time ran out to the machine, not to the policy', () => {
    const [loading] = parsePolicyList('{"policies":[{"name":"privileges-raise","sensors":["generic_kprobe"],"state":"TP_STATE_LOADING"}]}');
    expect(loadVerdict(loading)).toEqual({ status: 'error', reason: 'infra-boot-timeout' });
  });

  it('reads older agents without a state field from enabled and error', () => {
    const [old, broken] = parsePolicyList('{"policies":[{"name":"a","enabled":true},{"name":"b","enabled":false,"error":"x"}]}');
    expect(old!.state).toBe('TP_STATE_ENABLED');
    expect(broken!.state).toBe('TP_STATE_LOAD_ERROR');
  });

  it('picks the error lines out of an agent log', () => {
    const log = 'level=info msg="Starting"\nlevel=error msg="Failed to execute tetragon" error="ring buffer: invalid argument"\n';
    expect(agentErrors(log)).toEqual(['level=error msg="Failed to execute tetragon" error="ring buffer: invalid argument"']);
  });
});

describe('events exported by a real agent, tied back to their triggers', () => {
  it('matches each trigger\'s expectations against the events carrying its marker', async () => {
    const triggers = await loadTriggerCatalogue();
    const { events, problems } = readExport(fixture('x86_64-6.12-kprobes-no-multi.events.jsonl'), 'fixture', { tolerant: true });
    expect(problems).toEqual([]);
    const markers = triggers.map((t) => t.marker);
    const net = triggers.find((t) => t.id === 't1046-network-service-discovery')!;
    const mine = events.filter((e) => markerOf(e, markers) === net.marker);
    expect(mine.some((e) => e.type === 'process_kprobe' && e.function_name === 'tcp_connect' && e.policy_name === 'connect')).toBe(true);
    const tcp = net.expect.find((x) => x.type === 'process_kprobe' && x.function_name === 'tcp_connect');
    expect(tcp && 'matched' in findMatch(tcp, mine)).toBe(true);
  });

  it('finds the LSM events of the policy that watched /etc/passwd and /etc/shadow', () => {
    const { events } = readExport(fixture('x86_64-6.12-lsm-file-open.events.jsonl'), 'fixture');
    const lsm = events.filter((e) => e.type === 'process_lsm');
    expect(lsm.map((e) => [e.function_name, e.policy_name, e.process?.binary])).toContainEqual(['file_open', 'lsm-file-open', '/usr/bin/cat']);
    expect(JSON.stringify(lsm.map((e) => e.args))).toContain('/etc/shadow');
  });
});

describe('a Tetragon bundle', () => {
  it('refuses a directory without the release layout, saying what was expected', async () => {
    const dir = tempOut('bundle');
    await expect(loadBundle(dir)).rejects.toThrow(/expected the release layout: usr\/local\/bin\/tetragon/);
    await expect(loadBundle(join(dir, 'missing.tar.gz'))).rejects.toThrow(/no such file/);
  });

  it('takes its arch from the binary, not from the name, and refuses a non-ELF tetragon', async () => {
    const root = join(tempOut('bundle'), 'tetragon-v9.9.9-arm64');
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/local/lib/tetragon/bpf'), { recursive: true });
    writeFileSync(join(root, 'usr/local/bin/tetragon'), '#!/bin/sh\n');
    writeFileSync(join(root, 'usr/local/bin/tetra'), '#!/bin/sh\n');
    writeFileSync(join(root, 'usr/local/lib/tetragon/bpf/bpf_exit.o'), '');
    await expect(loadBundle(root)).rejects.toThrow(/expected an x86_64 or arm64 ELF executable/);
    writeFileSync(join(root, 'usr/local/bin/tetragon'), readFileSync('/bin/busybox'));
    const bundle = await loadBundle(root);
    expect(bundle).toMatchObject({ arch: 'x86_64', version: 'v9.9.9', bpfObjects: ['bpf_exit.o'] });
  });
});

describe('the names policies go by in the agent', () => {
  it('gives every later holder of a corpus name a numbered one, so no add is refused as a duplicate', async () => {
    const { policies } = await readPolicies([CORPUS]);
    const names = agentNames(policies);
    expect(new Set(names).size).toBe(policies.length);
    const syscalls = policies.flatMap((p, i) => (p.name === 'syscalls' ? [names[i]] : []));
    // Four tetragon-examples are called `syscalls`: the first keeps the name.
    expect(syscalls.length).toBeGreaterThanOrEqual(4);
    expect(syscalls.slice(0, 2)).toEqual(['syscalls', 'syscalls-2']);
    policies.forEach((p, i) => {
      const first = policies.findIndex((q) => q.name === p.name) === i;
      if (first) expect(names[i]).toBe(p.name);
      else expect(names[i]).toMatch(new RegExp(`^${p.name}-\\d+$`));
    });
  });
});
