/**
 * The check: one question asked of one subject on one cell. Everything bpfgate
 * writes (results.jsonl, junit, tables, annotations) is derived from these records.
 */
import type { Reason } from './reasons.js';

export type CheckStatus = 'pass' | 'fail' | 'skip' | 'error';

/** `runtime`: a container runtime on the host (the containerd platform), no kernel of bpfgate's own. */
export type Lane = 'static' | 'kernel' | 'tetragon-vm' | 'qemu-cluster' | 'kind' | 'k3s' | 'kubeconfig' | 'runtime';

/** Where a subject comes from, so failures can be annotated on the policy line. */
export interface SourceRef {
  file: string;
  line: number;
  column?: number;
}

/** Evidence is free-form but always JSON: error text, hit counts, inode numbers, LSM lists. */
export type Evidence = Record<string, unknown>;

export interface CheckResult {
  cell: string;
  lane: Lane;
  suite: string;
  /** What was asked about: a policy name, a feature ("fentry"), a bug ("ringbuf-pagesize"). */
  subject: string;
  /** The question: "schema", "portability", "feature", "hook:kprobe:tcp_connect", ... */
  check: string;
  status: CheckStatus;
  /** Null only for a plain pass with nothing to add. */
  reason: Reason | null;
  evidence: Evidence;
  durationMs: number;
  source?: SourceRef;
}

/** The identity of a check: two results with the same key answer the same question. */
export function checkKey(r: Pick<CheckResult, 'cell' | 'lane' | 'suite' | 'subject' | 'check'>): string {
  return [r.cell, r.lane, r.suite, r.subject, r.check].join('\u0000');
}

/** A finished check before the orchestrator stamps cell, lane and suite on it. */
export type CheckDraft = Omit<CheckResult, 'cell' | 'lane' | 'suite'>;

/** A planned check: its identity, known before anything runs (for --resume and for charging a dead cell). */
export type PlannedCheck = Pick<CheckResult, 'subject' | 'check'> & Partial<Pick<CheckResult, 'source'>>;
