/**
 * The design's default matrix (kernel lane): five Debian kernels (bookworm 6.1 and
 * trixie 6.12 for amd64 and arm64, trixie arm64-16k 6.12), each booted as is and
 * with `+nobpflsm`: ten cells. One source of truth: matrix/default.yaml, loaded
 * through the same loader as a user's matrix file.
 */
import { DEFAULT_MATRIX_FILE } from './assets.js';
import { loadMatrix, type LoadedMatrix } from './load.js';

export { DEFAULT_MATRIX_FILE };

/** The default matrix: what `bpfgate run` plans when no `--matrix` is given. */
export function loadDefaultMatrix(): Promise<LoadedMatrix> {
  return loadMatrix(DEFAULT_MATRIX_FILE);
}
