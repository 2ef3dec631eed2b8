/** Runs scripts/bench/latency-probe.ts against a regcache in its own process (scenario 8, scale-probe.ts). */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../../../test/helpers/index.js';

export interface ProbeResult {
  healthzMaxMs: number;
  healthzP99Ms: number;
  healthzCount: number;
  warmP50Ms: number;
  warmP99Ms: number;
  warmCount: number;
  errors: number;
}

/** Starts the probe and gives it a second to warm up; stop() ends it and returns its figures. */
export async function startLatencyProbe(url: string, repo: string, digests: string[]): Promise<{ pid: number | undefined; stop(): Promise<ProbeResult> }> {
  const probe = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', 'scripts/bench/latency-probe.ts', url, repo, digests.join(',')], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  probe.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const done = new Promise<void>((resolve) => probe.once('close', () => resolve()));
  await new Promise((r) => setTimeout(r, 1000));
  return {
    pid: probe.pid,
    async stop() {
      probe.stdin.end();
      await done;
      return JSON.parse(out.trim().split('\n').pop() || '{}') as ProbeResult;
    },
  };
}
