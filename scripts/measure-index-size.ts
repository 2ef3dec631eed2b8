/**
 * Issue 10 item 14, measured: what manifest references cost in the SQLite index. Puts N
 * manifests of K references each (config + layers) into a fresh SqliteMetadataStore, with
 * layer digests distinct per manifest (the attack: made-up layers never pulled) or shared by
 * all of them, and prints one JSON line per scenario:
 *
 * - `bytes`: index.db after `wal_checkpoint(TRUNCATE)` (the store's close);
 * - `bytesPerRef`: (bytes - an empty index - the manifest bodies) / (N x K);
 * - `putMs`: time of one putManifest (median and max over the N; synchronous: it is event-loop time);
 * - `evictMs`: planning and removing the oldest manifest (evictionCandidates + removeUnits).
 *
 * No blob rows are written unless the scenario says `cached` (then every layer has one).
 *
 *   node --import ./scripts/register-ts.mjs scripts/measure-index-size.ts [scenario-name ...]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteMetadataStore } from '../src/store/sqlite/sqlite-metadata-store.js';

interface Scenario { name: string; n: number; k: number; shared: boolean; cached?: boolean }

const SCENARIOS: Scenario[] = [
  { name: '20x44500-distinct', n: 20, k: 44_500, shared: false },
  { name: '20x44500-shared', n: 20, k: 44_500, shared: true },
  { name: '200x1000-distinct', n: 200, k: 1000, shared: false },
  { name: '200x1000-shared', n: 200, k: 1000, shared: true },
  { name: '200x1000-shared-cached', n: 200, k: 1000, shared: true, cached: true },
];

const digest = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const repo = { upstream: 'docker.io', repo: 'library/big' };

/**
 * A compact image manifest naming `refs` (first one the config), its own by `i`: layer
 * descriptors without mediaType, so 44,500 of them are about 4 MiB (cache.maxManifestSize).
 */
function body(refs: string[], i: number): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: refs[0], size: 1000 },
    layers: refs.slice(1).map((d) => ({ digest: d, size: 1 })),
    annotations: { 'org.example.i': String(i) },
  }));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number): number => Math.round(x * 10) / 10;

async function emptySize(dir: string): Promise<number> {
  const file = join(dir, 'empty.db');
  const s = new SqliteMetadataStore(file);
  await s.init();
  await s.close();
  return statSync(file).size;
}

async function run(sc: Scenario, dir: string, empty: number): Promise<Record<string, unknown>> {
  const file = join(dir, `${sc.name}.db`);
  const s = new SqliteMetadataStore(file, { touchFlushMs: 3_600_000 });
  await s.init();
  if (sc.cached) for (let j = 0; j < sc.k; j++) await s.putBlob(digest(`layer ${j}`), 1, undefined, 1);
  const put: number[] = [];
  let bodies = 0;
  for (let i = 0; i < sc.n; i++) {
    const refs = Array.from({ length: sc.k }, (_, j) => digest(sc.shared ? `layer ${j}` : `manifest ${i} layer ${j}`));
    const b = body(refs, i);
    bodies += b.length;
    const rec = { digest: digest(b.toString('latin1')), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: b.length, body: b };
    const t0 = performance.now();
    await s.putManifest(rec, { blobs: refs, manifests: [] }, repo, 10 + i);
    put.push(performance.now() - t0);
  }
  await s.close();
  const bytes = statSync(file).size;
  // Evicting the oldest manifest: its references and the counts and digests they kept.
  const again = new SqliteMetadataStore(file, { touchFlushMs: 3_600_000 });
  await again.init();
  const t0 = performance.now();
  const units = await again.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 1 });
  await again.removeUnits(units, () => false);
  const evictMs = performance.now() - t0;
  await again.close();
  const refs = sc.n * sc.k;
  return {
    scenario: sc.name, manifests: sc.n, refsPerManifest: sc.k, bytes, bodyBytes: bodies,
    bytesPerRef: round((bytes - empty - bodies) / refs),
    putMs: { median: round(median(put)), max: round(Math.max(...put)) },
    evictMs: round(evictMs),
  };
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const dir = mkdtempSync(join(tmpdir(), 'regcache-index-size-'));
  try {
    const empty = await emptySize(dir);
    for (const sc of SCENARIOS) {
      if (only.length && !only.includes(sc.name)) continue;
      console.log(JSON.stringify(await run(sc, dir, empty)));
      rmSync(join(dir, `${sc.name}.db`), { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
