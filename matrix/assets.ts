/**
 * Matrix files that ship with bpfgate: the JSON Schema of matrix files (also named by
 * their yaml-language-server comment) and the design's default matrix.
 */
import { assetPath } from '../core/assets.js';

export { PACKAGE_ROOT } from '../core/assets.js';

export const MATRIX_SCHEMA_FILE = assetPath('matrix', 'schema', 'matrix.schema.json');

/** The design's default matrix, loaded through the same loader as a user's file. */
export const DEFAULT_MATRIX_FILE = assetPath('matrix', 'default.yaml');

/** The assembled cluster of the mission: an x86_64 node and an arm64 16K node. */
export const CLUSTER_MATRIX_FILE = assetPath('matrix', 'cluster.yaml');
