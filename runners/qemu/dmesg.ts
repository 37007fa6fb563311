/**
 * Kernel log triage: warnings, oopses and verifier splats in a cell's dmesg are
 * failures of the cell even when every check passed.
 */

const SPLAT = [
  /\bWARNING: CPU: \d+ PID: \d+ at /,
  /\bBUG: /,
  /\bOops: /,
  /\bKernel panic\b/,
  /\bgeneral protection fault\b/,
  /\bUBSAN: /,
  /\bKASAN: /,
  /\bverifier (bug|internal error)\b/i,
  /\bRCU: .*stall/,
  /\bsoft lockup\b|\bhard LOCKUP\b/,
  /\bhung_task\b|\bblocked for more than \d+ seconds\b/,
];

/** The lines that look like a kernel splat, with one line of context after each. */
export function findSplats(dmesg: string): string[] {
  const lines = dmesg.split('\n');
  const found: string[] = [];
  lines.forEach((line, i) => {
    if (SPLAT.some((re) => re.test(line))) found.push([line, lines[i + 1] ?? ''].join('\n').trim());
  });
  return found;
}
