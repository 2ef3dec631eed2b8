/**
 * Issue 10 item 14, measured: what manifest references cost in the metadata store. Puts N
 * manifests of K references each (config + layers) into a fresh store, with layer digests
 * distinct per manifest (the attack: made-up layers never pulled) or shared by all of them,
 * and prints one JSON line per scenario:
 *
 * - SQLite (default): `bytes` is index.db after `wal_checkpoint(TRUNCATE)` (the store's close);
 *   `bytesPerRef` = (bytes - an empty index - the manifest bodies) / (N x K);
 * - `--postgres` (a throwaway server, test/helpers/postgres.ts): `bytes` is the database size;
 *   `bytesPerRef` = the reference tables with their indexes (manifest_refs, digest_ids) / (N x K);
 * - `putMs`: time of one putManifest (median and max over the N; for SQLite it is event-loop time);
 * - `evictMs`: planning and removing the oldest manifest (evictionCandidates + removeUnits).
 *
 * No blob rows are written unless the scenario says `cached` (then every layer has one).
 *
 *   node --import ./scripts/register-ts.mjs scripts/measure-index-size.ts [--postgres] [scenario-name ...]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { MetadataStore } from '../src/store/metadata-store.js';
import { PostgresMetadataStore } from '../src/store/postgres/postgres-metadata-store.js';
import { SqliteMetadataStore } from '../src/store/sqlite/sqlite-metadata-store.js';
import { startPostgres } from '../test/helpers/postgres.js';

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

/** One store of a scenario, and what its references cost on disk. */
interface Opened {
  store: MetadataStore;
  /** Closes what the puts left (SQLite: checkpointed) and reports sizes; the store is usable again after. */
  measure(bodies: number, refs: number): Promise<{ bytes: number; bytesPerRef: number }>;
  close(): Promise<void>;
}

function sqliteBackend(dir: string): { open(name: string): Promise<Opened>; close(): Promise<void> } {
  let empty: number | undefined;
  const open = async (name: string): Promise<Opened> => {
    const file = join(dir, `${name}.db`);
    let store = new SqliteMetadataStore(file, { touchFlushMs: 3_600_000 });
    await store.init();
    const opened: Opened = {
      get store() { return store; },
      async measure(bodies, refs) {
        await store.close();
        const bytes = statSync(file).size;
        store = new SqliteMetadataStore(file, { touchFlushMs: 3_600_000 });
        await store.init();
        return { bytes, bytesPerRef: round((bytes - empty! - bodies) / refs) };
      },
      async close() {
        await store.close();
        rmSync(file, { force: true });
      },
    };
    return opened;
  };
  return {
    async open(name) {
      if (empty === undefined) {
        const e = await open('empty');
        await e.store.close();
        empty = statSync(join(dir, 'empty.db')).size;
      }
      return open(name);
    },
    async close() {},
  };
}

async function postgresBackend(): Promise<{ open(name: string): Promise<Opened>; close(): Promise<void> }> {
  const pg = await startPostgres();
  return {
    async open(name) {
      const store = new PostgresMetadataStore({ url: await pg.createDatabase(`m_${name.replace(/\W/g, '_')}`), touchFlushMs: 3_600_000 });
      await store.init();
      return {
        store,
        async measure(_bodies, refs) {
          const { rows } = await store.pool.query<{ bytes: number; refs: number }>(`SELECT pg_database_size(current_database()) AS bytes,
            pg_total_relation_size('manifest_refs') + coalesce(pg_total_relation_size(to_regclass('digest_ids')), 0) AS refs`);
          return { bytes: rows[0]!.bytes, bytesPerRef: round(rows[0]!.refs / refs) };
        },
        close: () => store.close(),
      };
    },
    close: () => pg.stop(),
  };
}

async function run(sc: Scenario, opened: Opened): Promise<Record<string, unknown>> {
  if (sc.cached) for (let j = 0; j < sc.k; j++) await opened.store.putBlob(digest(`layer ${j}`), 1, undefined, 1);
  const put: number[] = [];
  let bodies = 0;
  for (let i = 0; i < sc.n; i++) {
    const refs = Array.from({ length: sc.k }, (_, j) => digest(sc.shared ? `layer ${j}` : `manifest ${i} layer ${j}`));
    const b = body(refs, i);
    bodies += b.length;
    const rec = { digest: digest(b.toString('latin1')), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: b.length, body: b };
    const t0 = performance.now();
    await opened.store.putManifest(rec, { blobs: refs, manifests: [] }, repo, 10 + i);
    put.push(performance.now() - t0);
  }
  const size = await opened.measure(bodies, sc.n * sc.k);
  // Evicting the oldest manifest: its references and the counts and digests they kept.
  const t0 = performance.now();
  const units = await opened.store.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 1 });
  await opened.store.removeUnits(units, () => false);
  const evictMs = performance.now() - t0;
  return {
    scenario: sc.name, manifests: sc.n, refsPerManifest: sc.k, ...size, bodyBytes: bodies,
    putMs: { median: round(median(put)), max: round(Math.max(...put)) },
    evictMs: round(evictMs),
  };
}

async function main(): Promise<void> {
  const postgres = process.argv.includes('--postgres');
  const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const dir = mkdtempSync(join(tmpdir(), 'regcache-index-size-'));
  const backend = postgres ? await postgresBackend() : sqliteBackend(dir);
  try {
    for (const sc of SCENARIOS) {
      if (only.length && !only.includes(sc.name)) continue;
      const opened = await backend.open(sc.name);
      try {
        console.log(JSON.stringify({ backend: postgres ? 'postgres' : 'sqlite', ...(await run(sc, opened)) }));
      } finally {
        await opened.close();
      }
    }
  } finally {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
