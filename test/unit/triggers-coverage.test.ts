import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadTriggerCatalogue } from '../../suites/triggers/load.js';
import { CORPUS, EXAMPLES, EXTRA } from '../support/shared.js';

/**
 * Every policy of the shared corpus should have a trigger that plausibly reaches one of
 * its hooks. The ones no trigger can reach in a QEMU guest are listed here, each with
 * why; the test fails when that list and the catalogue disagree, either way.
 */
const UNREACHABLE: Record<string, string> = {
  'tetragon-examples/cves/cve-2023-2640-overlayfs-ubuntu.yaml':
    'security_inode_copy_up_xattr needs an overlayfs copy-up; overlay is a module in Debian kernels and the guest has no modules',
};

interface CorpusPolicy {
  file: string;
  /** Hook ids as triggers hint them: kprobe:NAME (arch prefix dropped), tracepoint:S/E, rawtp:S/E, lsm:H, uprobe:P:S, usdt:P:PR:N. */
  hooks: string[];
  /** Generated kprobe lists: matched against hint names rather than listed. */
  generated: RegExp[];
}

type Json = Record<string, unknown>;

const ARCH_PREFIX = /^(__x64_|__arm64_|__ia32_)/;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** The TracingPolicy documents of the corpus that are valid YAML, with their hooks. */
function corpusPolicies(): CorpusPolicy[] {
  const out: CorpusPolicy[] = [];
  for (const file of [...yamlFiles(EXAMPLES), ...yamlFiles(EXTRA)].sort()) {
    const docs = parseAllDocuments(readFileSync(file, 'utf8'));
    if (!Array.isArray(docs) || docs.some((d) => d.errors.length > 0)) continue;
    for (const doc of docs) {
      const policy = doc.toJS() as Json | null;
      if (!policy || !/^TracingPolicy(Namespaced)?$/.test(String(policy.kind))) continue;
      const spec = (policy.spec ?? {}) as Json;
      const lists = new Map(((spec.lists ?? []) as Json[]).map((l) => [String(l.name), l]));
      const hooks: string[] = [];
      const generated: RegExp[] = [];
      const calls = [
        ...((spec.kprobes ?? []) as Json[]).map((k) => String(k.call)),
        ...((spec.enforcers ?? []) as Json[]).flatMap((e) => (e.calls ?? []) as string[]),
      ];
      for (const call of calls) {
        const list = call.startsWith('list:') ? lists.get(call.slice(5)) : undefined;
        if (list?.type === 'generated_syscalls') generated.push(/^sys_/);
        else if (list?.type === 'generated_ftrace') generated.push(new RegExp(String(list.pattern)));
        else if (list) hooks.push(...((list.values ?? []) as string[]).map((v) => `kprobe:${v.replace(/^\w+\//, '').replace(ARCH_PREFIX, '')}`));
        else hooks.push(`kprobe:${call.replace(ARCH_PREFIX, '')}`);
      }
      for (const tp of (spec.tracepoints ?? []) as Json[]) hooks.push(`${tp.raw ? 'rawtp' : 'tracepoint'}:${String(tp.subsystem)}/${String(tp.event)}`);
      for (const lsm of (spec.lsmhooks ?? []) as Json[]) hooks.push(`lsm:${String(lsm.hook)}`);
      for (const up of (spec.uprobes ?? []) as Json[]) for (const sym of (up.symbols ?? []) as string[]) hooks.push(`uprobe:${String(up.path)}:${sym}`);
      for (const u of (spec.usdts ?? []) as Json[]) hooks.push(`usdt:${String(u.path)}:${String(u.provider)}:${String(u.name)}`);
      // The loader sensor is a kprobe on perf_event_mmap_output.
      if (spec.loader === true) hooks.push('kprobe:perf_event_mmap_output');
      out.push({ file: relative(CORPUS, file), hooks, generated });
    }
  }
  return out;
}

let hints: Set<string>;
let policies: CorpusPolicy[];
beforeAll(async () => {
  hints = new Set((await loadTriggerCatalogue()).flatMap((t) => t.hooks));
  policies = corpusPolicies();
});

function covered(p: CorpusPolicy): boolean {
  return p.hooks.some((h) => hints.has(h)) || p.generated.some((re) => [...hints].some((h) => h.startsWith('kprobe:') && re.test(h.slice(7))));
}

describe('trigger coverage of the corpus policies', () => {
  it('reads the policies of tetragon-examples and tetragon-extra', () => {
    expect(policies.length).toBeGreaterThanOrEqual(80);
    expect(policies.filter((p) => p.hooks.length > 0 || p.generated.length > 0).length).toBeGreaterThanOrEqual(75);
  });

  it('reaches a hook of every policy, except the unreachable ones listed with their reason', () => {
    const uncovered = [...new Set(policies.filter((p) => !covered(p)).map((p) => p.file))].sort();
    expect(uncovered).toEqual(Object.keys(UNREACHABLE).sort());
  });

  it('lists as unreachable only the overlayfs copy-up', () => {
    for (const file of Object.keys(UNREACHABLE)) {
      const hooks = policies.filter((p) => p.file === file).flatMap((p) => p.hooks);
      expect(hooks, file).toEqual(['kprobe:security_inode_copy_up_xattr']);
    }
  });

  it('reaches the uprobes, USDTs and the loader the examples name, with hints named as the policies name them', () => {
    for (const hook of [
      'uprobe:/bin/bash:readline',
      'uprobe:/bin/bash:main',
      'uprobe:/procRoot/1/root/usr/bin/bash:_start',
      'uprobe:/lib64/libc.so.6:malloc',
      'usdt:/home/jolsa/tetragon/contrib/tester-progs/usdt:test:usdt3',
      'usdt:/home/jolsa/tetragon/contrib/tester-progs/usdt-override:tetragon:test_4B',
      'kprobe:perf_event_mmap_output',
    ]) {
      expect(hints.has(hook), hook).toBe(true);
    }
  });

  it('hints the hooks the corpus watches most', () => {
    for (const hook of [
      'kprobe:tcp_connect',
      'kprobe:fd_install',
      'kprobe:security_file_permission',
      'kprobe:security_mmap_file',
      'kprobe:security_socket_connect',
      'kprobe:commit_creds',
      'kprobe:sys_setuid',
      'kprobe:create_user_ns',
      'kprobe:sys_setns',
      'kprobe:sys_pivot_root',
      'kprobe:sys_mount',
      'kprobe:security_kernel_module_request',
      'kprobe:security_kernel_read_file',
      'kprobe:bpf_check',
      'kprobe:security_bpf_map_create',
      'kprobe:sys_ptrace',
      'kprobe:sys_memfd_create',
      'kprobe:sys_symlinkat',
      'kprobe:sys_linkat',
      'kprobe:security_inode_follow_link',
      'kprobe:tty_write',
      'kprobe:security_bprm_check',
      'lsm:bprm_check_security',
      'lsm:file_open',
      'kprobe:sys_clock_settime',
      'kprobe:sys_write',
      'kprobe:sys_close',
      'kprobe:inet_csk_listen_start',
      'kprobe:tcp_create_openreq_child',
      'kprobe:__cgroup_bpf_run_filter_skb',
      'kprobe:ip_output',
      'kprobe:security_perf_event_alloc',
      'kprobe:sys_kill',
      'tracepoint:raw_syscalls/sys_enter',
      'rawtp:sched/sched_process_exec',
    ]) {
      expect(hints.has(hook), hook).toBe(true);
    }
  });
});
