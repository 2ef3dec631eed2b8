import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration files start real registries and containerd; two at a time fits 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    globalSetup: ['test/global-setup.ts'],
  },
});
