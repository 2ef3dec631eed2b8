/**
 * Scenario 8's warm-up (main.ts, scale-probe.ts): a regcache that serves a 300k-blob store has been running,
 * evicting, and serving hits for a while. A fresh Node process spends its first seconds compiling its hot paths
 * (perf: V8's compiler and baseline code were a third of the process's CPU in the first fills), so before the
 * probe starts the warm-up pulls some cold blobs (each crosses the cap and starts a sweep, as the measured ones
 * will) and GETs the warm manifests the probe will time.
 *
 * First it waits for the kernel to write back what the seeding and the index migration dirtied (300k files,
 * ~230 MB of index): without that, writeback threads took 0.6-1.4 CPU-s of the 2 cores during the measured fills
 * in some runs and not in others.
 */
import { spawnSync } from 'node:child_process';
import type { Agent } from 'undici';
import { mapLimit } from './stats.js';

export async function warmUpScale(agent: Agent, base: string, repo: string, cold: Array<{ digest: string; size: number }>, hot: string[]): Promise<void> {
  spawnSync('sync', { stdio: 'ignore' });
  const { request } = await import('undici');
  const get = async (path: string, accept?: string): Promise<number> => {
    const res = await request(`${base}${path}`, { dispatcher: agent, ...(accept ? { headers: { accept } } : {}) });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new Error(`warm-up: GET ${path}: ${res.statusCode}`);
    return body.length;
  };
  await mapLimit(cold, 2, async (b) => {
    if ((await get(`/v2/${repo}/blobs/${b.digest}`)) !== b.size) throw new Error(`warm-up: short body for ${b.digest}`);
  });
  for (let round = 0; round < 5; round++) {
    await mapLimit(hot, 4, (d) => get(`/v2/${repo}/manifests/${d}`, 'application/vnd.oci.image.manifest.v1+json'));
  }
}
