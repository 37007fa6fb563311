/**
 * A real cluster node's evidence, read back from the files the cluster suite wrote for
 * it (suites/cluster/judge.ts NODE_FILES; test/fixtures/cluster/README.md says which runs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Arch } from '../../matrix/cell.js';
import { lostBetween, lostCounts } from '../../suites/tetragon/agent-metrics.js';
import { readExport } from '../../suites/tetragon/events.js';
import { parsePolicyList } from '../../suites/tetragon/load-state.js';
import { NODE_FILES, type NodeEvidence, type TriggerPods } from '../../suites/cluster/judge.js';
import { PROJECT_ROOT } from './shared.js';

export const CLUSTER_FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'cluster');

export function nodeFile(dir: string, name: string): string | undefined {
  const file = join(CLUSTER_FIXTURES, dir, name);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

/** The evidence of the node whose files are in `dir` (under test/fixtures/cluster). */
export function nodeEvidence(dir: string, node: string, arch: Arch, criLookup: boolean): NodeEvidence {
  const read = (name: string) => nodeFile(dir, name);
  const listing = read(NODE_FILES.listing);
  const pods = JSON.parse(read(NODE_FILES.pods)!) as TriggerPods;
  const events = (name: string) => readExport(read(name) ?? '', join(dir, name), { tolerant: true }).events;
  const before = read(NODE_FILES.metricsBefore);
  const after = read(NODE_FILES.metrics);
  const agentLog = read(NODE_FILES.log) ?? '';
  return {
    node,
    arch,
    report: { ready: listing !== undefined, alive: true, states: listing ? parsePolicyList(listing) : [], events: [], agentLog, tetraStderr: '' },
    first: { pods: new Map(Object.entries(pods.before)), events: events(NODE_FILES.events) },
    ...(pods.restart && pods.after ? { restart: { runtime: pods.restart, round: { pods: new Map(Object.entries(pods.after)), events: events(NODE_FILES.eventsAfterRestart) } } } : {}),
    agentLog,
    lost: before && after ? lostBetween(lostCounts(before), lostCounts(after)) : undefined,
    criLookup,
  };
}
