import { beforeAll, describe, expect, it } from 'vitest';
import { readPolicies } from '../../policy/index.js';
import type { Policy } from '../../policy/model.js';
import { bootsNeeded, floods, loadOrder, planBoots, programSets, spreadOverBoots, TCG_AGENT_START_SECONDS, TCG_SECONDS_PER_PROGRAM_SET as PER_SET } from '../../suites/tetragon/boots.js';
import { selectorsMayPass } from '../../suites/tetragon/selectors.js';
import { hookSpec } from '../../policy/spec.js';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import type { Trigger } from '../../suites/triggers/model.js';
import { CORPUS, CRD_DIR } from '../support/shared.js';

let corpus: Policy[];
const byFile = (file: string) => corpus.find((p) => p.source.file.endsWith(`/${file}`))!;

beforeAll(async () => {
  const read = await readPolicies([CORPUS], { schema: CRD_DIR });
  corpus = read.documents.flatMap((d) => (d.policy && d.problems.length === 0 ? [d.policy] : []));
});

describe('the BPF program sets the agent loads per policy', () => {
  it('counts a kprobe with return: true twice, and one set for all kprobes with kprobe.multi', () => {
    // file-monitoring: three kprobes, each with return: true.
    const files = byFile('filename_monitoring.yaml');
    expect(files.hooks.filter((h) => h.kind === 'kprobe' && h.kretprobe)).toHaveLength(3);
    expect(programSets(files, false)).toBe(6);
    expect(programSets(files, true)).toBe(2);
    const lsm = byFile('lsm_file_open.yaml');
    expect(programSets(lsm, false)).toBe(lsm.hooks.length);
    expect(programSets(lsm, true)).toBe(lsm.hooks.length);
  });
});

describe('spreading the corpus over boots', () => {
  const budget = 360;
  const perSet = PER_SET.x86_64;

  it('asks for enough boots that each boot\'s estimated load fits the budget', () => {
    const costs = corpus.map((p) => programSets(p, false));
    const boots = bootsNeeded(costs, budget, perSet);
    expect(boots).toBeGreaterThan(1);
    const spread = spreadOverBoots(costs, boots);
    const load = new Array<number>(boots).fill(0);
    spread.forEach((b, i) => (load[b]! += costs[i]!));
    const biggest = Math.max(...costs);
    for (const sets of load) {
      expect(sets).toBeGreaterThan(0);
      // Greedy packing is within one policy of the even share.
      expect(sets * perSet).toBeLessThanOrEqual(budget - TCG_AGENT_START_SECONDS + biggest * perSet);
    }
    expect(Math.max(...load) - Math.min(...load)).toBeLessThanOrEqual(biggest);
    // One boot fewer would not fit.
    expect(costs.reduce((a, b) => a + b, 0) * perSet).toBeGreaterThan((boots - 1) * (budget - TCG_AGENT_START_SECONDS));
  });

  it('is the same for the same input, and puts everything in boot 0 when there is one boot', () => {
    const costs = corpus.map((p) => programSets(p, true));
    expect(spreadOverBoots(costs, 4)).toEqual(spreadOverBoots(costs, 4));
    expect(new Set(spreadOverBoots(costs, 1))).toEqual(new Set([0]));
    expect(bootsNeeded([1], budget, perSet)).toBe(1);
    expect(bootsNeeded([], budget, perSet)).toBe(1);
    // arm64 guests verify about half as fast under TCG: the same corpus takes more boots.
    expect(bootsNeeded(costs, budget, PER_SET.arm64)).toBeGreaterThan(bootsNeeded(costs, budget, perSet));
  });
});

describe('the plan of a cell\'s boots', () => {
  it('gives the policies that export every syscall a boot of their own, and packs the rest', () => {
    const costs = corpus.map((p) => programSets(p, false));
    const { count, bootOf } = planBoots(corpus, costs, { boots: 'auto', budgetSeconds: 360, secondsPerSet: PER_SET.x86_64 });
    const raw = corpus.indexOf(byFile('raw_syscalls.yaml'));
    expect(bootOf[raw]).toBe(count - 1);
    expect(bootOf.filter((b) => b === count - 1)).toHaveLength(corpus.filter((p) => floods(p) === 2).length);
    for (let b = 0; b < count; b++) expect(bootOf).toContain(b);
    const quiet = corpus.flatMap((p, i) => (floods(p) === 2 ? [] : [costs[i]!]));
    expect(count).toBe(bootsNeeded(quiet, 360, PER_SET.x86_64) + 1);
  });

  it('keeps to the boots asked for, and to one boot when asked', () => {
    const costs = corpus.map((p) => programSets(p, true));
    const three = planBoots(corpus, costs, { boots: 3, budgetSeconds: 360, secondsPerSet: PER_SET.x86_64 });
    expect(three.count).toBe(3);
    expect(new Set(three.bootOf)).toEqual(new Set([0, 1, 2]));
    const one = planBoots(corpus, costs, { boots: 1, budgetSeconds: 360, secondsPerSet: PER_SET.x86_64 });
    expect(new Set(one.bootOf)).toEqual(new Set([0]));
  });
});

describe('the order a boot adds its policies in', () => {
  it('adds the policies that export every raw syscall last, then those with unfiltered hooks', () => {
    expect(floods(byFile('raw_syscalls.yaml'))).toBe(2);
    // killer.yaml hooks raw_syscalls/sys_enter too, behind selectors: it exports only what they let through.
    expect(floods(byFile('killer.yaml'))).toBeLessThan(2);
    expect(floods(byFile('filename_monitoring.yaml'))).toBe(0);
    expect(floods(byFile('tcp-connect.yaml'))).toBe(1);
    const picks = ['raw_syscalls.yaml', 'tcp-connect.yaml', 'filename_monitoring.yaml'].map((f) => corpus.indexOf(byFile(f)));
    const order = loadOrder(corpus, picks);
    expect(order.map((i) => corpus[i]!.source.file.split('/').pop())).toEqual(['filename_monitoring.yaml', 'tcp-connect.yaml', 'raw_syscalls.yaml']);
  });
});

describe('whether a hook\'s selectors can let a trigger\'s expected event through', () => {
  let triggers: Trigger[];
  beforeAll(async () => {
    triggers = await loadTriggerCatalogue();
  });
  const spec = (file: string, call: string) => {
    const p = byFile(file);
    return hookSpec(p, p.hooks.find((h) => h.name === call)!);
  };
  const expected = (id: string, fn: string) => triggers.find((t) => t.id === id)!.expect.find((x) => 'function_name' in x && x.function_name === fn)!;

  it('rejects a pinned path the Prefix "/etc/" selector filters out, and lets one under /etc through', () => {
    const perm = spec('filename_monitoring.yaml', 'security_file_permission');
    expect(selectorsMayPass(perm, expected('t1546-004-unix-shell-configuration', 'security_file_permission'))).toBe(false);
    expect(selectorsMayPass(perm, expected('t1574-006-dynamic-linker-hijacking', 'security_file_permission'))).toBe(true);
    expect(selectorsMayPass(spec('filename_monitoring.yaml', 'security_mmap_file'), expected('t1574-006-dynamic-linker-hijacking', 'security_mmap_file'))).toBe(false);
  });

  it('leaves undecided what it cannot know: no selectors, or no pinned value', () => {
    const perm = spec('filename_monitoring.yaml', 'security_file_permission');
    expect(selectorsMayPass(perm, { type: 'process_kprobe', function_name: 'security_file_permission', args: [{ path: 'file_arg.path', contains: 'bashrc' }] })).toBe(true);
    expect(selectorsMayPass({ args: [{ index: 0, type: 'file' }] }, expected('t1546-004-unix-shell-configuration', 'security_file_permission'))).toBe(true);
    // The same file under NotPrefix: certain the other way round.
    const not = { args: [{ index: 0, type: 'file' }], selectors: [{ matchArgs: [{ index: 0, operator: 'NotPrefix', values: ['/etc/'] }] }] };
    expect(selectorsMayPass(not, expected('t1546-004-unix-shell-configuration', 'security_file_permission'))).toBe(true);
    expect(selectorsMayPass(not, expected('t1574-006-dynamic-linker-hijacking', 'security_file_permission'))).toBe(false);
  });
});

