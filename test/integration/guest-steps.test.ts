/**
 * The guest's /init against steps that fail in every way a shell script can, in one real
 * boot of x86_64-6.12 (Debian trixie under QEMU TCG): each step runs as a child of init,
 * so an `exit`, a syntax error or `set -e` fails that step, with its output, and the boot
 * goes on. The same boot has four background writers emitting at once, a setting passed
 * from one step to the next, the real tetragon step with a stand-in agent that prints the
 * arguments it got, and the real policies step with a trigger that fails.
 */
import { copyFileSync, appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage, buildOverlay } from '../../runners/qemu/guest-image.js';
import { fetchKernel } from '../../runners/qemu/kernel-cache.js';
import type { GuestRecord } from '../../runners/qemu/protocol.js';
import { failedSteps } from '../../runners/qemu/steps.js';
import { bootGuest, type GuestOutcome } from '../../runners/qemu/vm.js';
import { CoverageTracker } from '../../suites/policies/coverage.js';
import { argsFile } from '../../suites/tetragon/args.js';
import { triggerGuestFiles } from '../../suites/triggers/guest-files.js';
import { tempOut } from '../support/cli.js';
import { PROJECT_ROOT } from '../support/shared.js';

const ALLOWLIST = '{"event_set":["PROCESS_EXEC"], "pod_regex":["a b"]}';

const STEPS: Record<string, string> = {
  '10-exit.sh': 'echo "exit step: on its way out"\nemit mark "step=10"\nexit 3\necho never\n',
  // ash runs what it parsed before it meets the error.
  '20-syntax.sh': 'echo "syntax step: first line ran"\nif true; then\n  echo inside\n(\n',
  '30-set-e.sh': 'set -e\necho "set -e step: before false"\nfalse\necho never\n',
  // A setting for the steps after this one; init must not take PATH from a step.
  '40-setting.sh': `echo "BPFGATE_TEST_SETTING=two words, 'quoted'" >> "$BPFGATE_ENV"\necho "PATH=/nowhere" >> "$BPFGATE_ENV"\n`,
  '50-alive.sh': 'emit alive "arch=$BPFGATE_ARCH" "$BPFGATE_TEST_SETTING"\n[ "$PATH" != /nowhere ]\n',
  // Four processes emitting 3000-byte records at the same time: two subshells of the step
  // (the emit function) and two new shells (the emit command on PATH).
  '60-writers.sh': `burst() { for n in 1 2 3 4 5; do head -c 3000 /dev/zero | tr '\\0' $1 | emit -i burst "writer=$1 n=$n"; done; }
( burst a ) &
( burst b ) &
for w in c d; do
  sh -c 'for n in 1 2 3 4 5; do head -c 3000 /dev/zero | tr "\\0" $0 | emit -i burst "writer=$0 n=$n"; done' $w &
done
wait
`,
};

describe('steps that exit, break or die of set -e in a real guest', () => {
  let outcome: GuestOutcome;
  let records: GuestRecord[];
  let serialLog: string;
  const of = (type: string) => records.filter((r) => r.type === type);

  beforeAll(async () => {
    const dir = tempOut('guest-steps');
    serialLog = join(dir, 'serial.log');
    const kernel = await fetchKernel({ kind: 'debian', suite: 'trixie', package: 'linux-image-amd64', debArch: 'amd64' });
    const image = await buildGuestImage('x86_64');
    const overlay = join(dir, 'overlay.cpio.gz');
    await buildOverlay(
      [
        ...Object.entries(STEPS).map(([name, content]) => ({ path: `/bpfgate/steps/${name}`, content })),
        { path: '/bpfgate/steps/70-tetragon.sh', content: readFileSync(join(PROJECT_ROOT, 'suites', 'tetragon', 'guest', 'tetragon.sh')) },
        // The stand-in agent prints each argument it got on a line of its own, and exits.
        { path: '/usr/local/bin/tetragon', content: '#!/bin/sh\nfor a in "$@"; do printf "arg<%s>\\n" "$a"; done\nexit 1\n', mode: 0o755 },
        { path: '/bpfgate/tetragon/args', content: argsFile(['--export-allowlist', ALLOWLIST, '--disable-kprobe-multi']) },
        { path: '/bpfgate/tetragon/env', content: 'BPFGATE_TETRAGON_WAIT=15\n' },
        { path: '/bpfgate/tetragon/policies/000-000.yaml', content: '{}' },
        { path: '/bpfgate/tetragon/markers', content: 'bpfgate-none\n' },
        // The real policies step, one probe, one trigger that fails: its output is a part of its counters.
        { path: '/bpfgate/steps/80-policies.sh', content: readFileSync(join(PROJECT_ROOT, 'suites', 'policies', 'guest', 'policies.sh')) },
        { path: '/bpfgate/policies/counters.awk', content: readFileSync(join(PROJECT_ROOT, 'suites', 'policies', 'guest', 'counters.awk')) },
        { path: '/bpfgate/policies/kprobes', content: 'b0 p security_file_open\n' },
        { path: '/bpfgate/policies/tracepoints', content: '' },
        ...triggerGuestFiles([{ id: 't-fails', marker: 'bpfgate-t-fails', steps: 'cat /etc/passwd > /dev/null\necho "oops from the trigger"\nexit 7\n', cleanup: 'true\n' }], 0, '/bpfgate/triggers/list'),
      ],
      overlay,
    );
    // As the cell runner does: the base padded to 4 bytes, the overlay after it.
    const initrd = join(dir, 'initrd.img');
    copyFileSync(image.path, initrd);
    const size = statSync(initrd).size;
    if (size % 4) appendFileSync(initrd, Buffer.alloc(4 - (size % 4)));
    appendFileSync(initrd, readFileSync(overlay));
    outcome = await bootGuest({
      arch: 'x86_64', kernel: kernel.image, initrd, append: [], accel: 'tcg', timeoutMs: 240_000, serialLog,
    });
    records = outcome.records;
  }, 600_000);

  it('finishes the boot: dmesg and done arrive, every record in sequence', () => {
    expect(outcome.status).toBe('done');
    expect(outcome.problems).toEqual([]);
    expect(records.map((r) => r.type).slice(-2)).toEqual(['dmesg', 'done']);
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
  });

  it('powers off only once the console has sent everything: the kernel\'s last words come after the last frame', () => {
    const log = readFileSync(serialLog, 'utf8');
    const lastFrame = log.lastIndexOf(':done:');
    expect(lastFrame).toBeGreaterThan(0);
    expect(log.indexOf('@@', lastFrame)).toBeGreaterThan(lastFrame);
    expect(log.indexOf('reboot: Power down')).toBeGreaterThan(log.indexOf('@@', lastFrame));
  });

  it('reports each failed step with its status and the end of its output, and only those', () => {
    const failed = failedSteps(records);
    expect(failed.map((f) => [f.step, f.rc])).toEqual([['10-exit.sh', 3], ['20-syntax.sh', 2], ['30-set-e.sh', 1]]);
    expect(failed[0]!.output).toContain('exit step: on its way out');
    expect(failed[1]!.output).toContain('syntax step: first line ran');
    expect(failed[1]!.output).toMatch(/syntax error/);
    expect(failed[2]!.output).toContain('set -e step: before false');
    expect(failed[2]!.output).not.toContain('never');
    expect(of('step-end').map((r) => [r.header.name, r.header.rc])).toEqual([
      ['10-exit.sh', '3'], ['20-syntax.sh', '2'], ['30-set-e.sh', '1'], ['40-setting.sh', '0'], ['50-alive.sh', '0'], ['60-writers.sh', '0'], ['70-tetragon.sh', '0'], ['80-policies.sh', '0'],
    ]);
  });

  it('keeps what a step emitted before it failed, and runs the steps after it with the settings passed on', () => {
    expect(of('mark').map((r) => r.header.step)).toEqual(['10']);
    const [alive] = of('alive');
    expect(alive?.header.arch).toBe('x86_64');
    expect(alive?.body).toBe("two words, 'quoted'");
  });

  it('takes every record of four writers at once whole, each with a number of its own', () => {
    const bursts = of('burst');
    expect(bursts).toHaveLength(20);
    for (const r of bursts) expect(r.body).toBe(r.header.writer!.repeat(3000));
    expect(new Set(bursts.map((r) => `${r.header.writer}/${r.header.n}`)).size).toBe(20);
  });

  it('starts the agent with each argument as the host wrote it, and sends its log tail as a part of tp-list', () => {
    const [list] = of('tp-list');
    expect(list?.header.ready).toBe('0');
    const tail = list?.parts?.['agent-tail']?.body ?? '';
    expect(tail.trim().split('\n')).toEqual(['arg<--export-allowlist>', `arg<${ALLOWLIST}>`, 'arg<--disable-kprobe-multi>']);
    expect(of('agent-log')[0]?.body).toContain(`arg<${ALLOWLIST}>`);
  });

  it('gives a failed trigger its output, sent as a part of its counters record', () => {
    const tracker = new CoverageTracker();
    for (const r of of('counters')) tracker.onCounters(r);
    expect(tracker.runs).toHaveLength(1);
    const [run] = tracker.runs;
    expect(run).toMatchObject({ trigger: 't-fails', exitCode: 7 });
    expect(run!.output).toContain('oops from the trigger');
    expect(run!.delta.get('b0')).toBeGreaterThan(0);
  });
});
