/**
 * undici-lean loads undici's parts without its index. Run in a child process, so the index
 * (which vitest or another test may have loaded) cannot supply what the lean load forgot.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent as FullAgent, errors as fullErrors, request as fullRequest } from 'undici';
import { describe, expect, it } from 'vitest';
import { Agent, errors } from '../../src/upstream/undici-lean.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('undici-lean', () => {
  it('gives the same Agent, request method and error classes the undici package exports', () => {
    expect(Agent).toBe(FullAgent);
    expect(errors).toBe(fullErrors);
    expect(new Agent().request).toBe(new FullAgent().request);
    expect(typeof fullRequest).toBe('function');
  });

  it('alone (without the index loaded), an Agent can request, and the index is not loaded', () => {
    const out = execFileSync(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e', `
      import { createRequire } from 'node:module';
      const { Agent, errors } = await import('./src/upstream/undici-lean.ts');
      const require = createRequire(import.meta.url);
      const index = Object.keys(require.cache).some((k) => /undici[\\\\/]index\\.js$/.test(k));
      console.log(JSON.stringify({ request: typeof new Agent().request, timeout: typeof errors.BodyTimeoutError, index }));
    `], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ request: 'function', timeout: 'function', index: false });
  });
});
