import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests boot real kernels under TCG: give them room, and run files one at a time
    // so two QEMU guests never fight over the 2 cores of a CI machine.
    testTimeout: 120_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    // One temporary directory per test run, removed after it (BPFGATE_KEEP_TEST_TMP keeps it).
    globalSetup: ['./test/support/scratch-tmpdir.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
