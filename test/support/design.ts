/** The ten cell ids of the design's default matrix (shared/docs/design.md), in its table's order. */
export const DEFAULT_CELL_IDS = [
  'x86_64-6.1',
  'x86_64-6.12',
  'arm64-4k-6.1',
  'arm64-4k-6.12',
  'arm64-16k-6.12',
  'x86_64-6.1+nobpflsm',
  'x86_64-6.12+nobpflsm',
  'arm64-4k-6.1+nobpflsm',
  'arm64-4k-6.12+nobpflsm',
  'arm64-16k-6.12+nobpflsm',
] as const;
