/**
 * Triggers as guest files: `/bpfgate/triggers/NNN.steps.sh` and `NNN.cleanup.sh`, plus a
 * list of `NNN id marker` lines that a suite's guest step reads in order. Suites that
 * share a boot number their triggers from different starts, so their files never collide.
 */
import type { GuestFile } from '../../runners/qemu/session.js';
import type { TriggerSpec } from './model.js';

export type TriggerRunSpec = Pick<TriggerSpec, 'id' | 'marker' | 'steps' | 'cleanup'>;

export function triggerGuestFiles(runs: readonly TriggerRunSpec[], firstSeq: number, listPath: string): GuestFile[] {
  const files: GuestFile[] = [];
  const list = runs.map((t, i) => {
    const n = String(firstSeq + i).padStart(3, '0');
    files.push({ path: `/bpfgate/triggers/${n}.steps.sh`, content: t.steps }, { path: `/bpfgate/triggers/${n}.cleanup.sh`, content: t.cleanup });
    return `${n} ${t.id} ${t.marker}`;
  });
  files.push({ path: listPath, content: list.join('\n') + '\n' });
  return files;
}
