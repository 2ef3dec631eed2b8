/** src/upstream/undici.ts loads Agent and the error classes without undici's index: they must be the index's own. */
import { describe, expect, it } from 'vitest';
import { Agent, errors } from '../../src/upstream/undici.js';

describe('undici parts', () => {
  it('are the objects undici exports, so instanceof holds across both ways of loading', async () => {
    const undici = await import('undici');
    expect(Agent).toBe(undici.Agent);
    expect(errors).toBe(undici.errors);
    expect(errors.HeadersTimeoutError).toBe(undici.errors.HeadersTimeoutError);
    expect(new errors.ConnectTimeoutError()).toBeInstanceOf(undici.errors.UndiciError);
  });

  it('an Agent has the request API before the index was ever loaded (a fresh module graph)', async () => {
    const { execFileSync } = await import('node:child_process');
    // A child process: this test file's own graph may already have loaded the index.
    const out = execFileSync(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e',
      "import { createRequire } from 'node:module'; const { Agent } = await import('./src/upstream/undici.ts'); const a = new Agent();" +
      " const index = Object.keys(createRequire(import.meta.url).cache).some((k) => k.endsWith('/undici/index.js'));" +
      " console.log(typeof a.request, typeof a.stream, index); await a.close();"],
      { encoding: 'utf8' });
    expect(out.trim().split(' ')).toEqual(['function', 'function', 'false']);
  });
});
