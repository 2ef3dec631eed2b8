import { defineConfig } from 'vitest/config';

/**
 * Three layers (see README "Tests"):
 *  - unit: pure code, no system tools, no dist/ (runs on a bare machine);
 *  - component: services in-process with a scriptable fake upstream, no system tools;
 *  - integration: real processes and clients; its global setup checks the tools and dist/.
 * Run one with `vitest run --project NAME` (npm run test:unit|test:component|test:integration).
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration files start real registries and containerd; two at a time fits 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'component', include: ['test/component/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/helpers-selftest/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
