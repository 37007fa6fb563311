/**
 * Writing a file so that a reader sees the old text or the new, never half of one: the
 * text goes to a temporary file beside it (same directory, so the rename stays on one file
 * system) that is renamed over it. Output files, run.json and cache manifests are written so.
 */
import { rename, writeFile } from 'node:fs/promises';

export async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
