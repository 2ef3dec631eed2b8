/**
 * Schema v3 of the SQLite index stores manifest references by interned digest (digest_ids,
 * src/store/sqlite/digest-sql.ts). An index written by v2 (references as two digest strings)
 * migrates in place, in one transaction, and then answers every query exactly as an index
 * filled through the v3 store with the same content; a failed migration leaves it as it was.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { HOSTED, type EvictionUnit, type ManifestLinks, type ManifestRecord, type RepoRef } from '../../src/store/metadata-store.js';
import { digestText } from '../../src/store/sqlite/digest-sql.js';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteMetadataStore } from '../../src/store/sqlite/sqlite-metadata-store.js';
import { fakeDigest } from '../contract/metadata-store.contract.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempFile = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-refs-'));
  dirs.push(dir);
  return join(dir, 'index.db');
};

/**
 * The v1 and v2 schemas are the first two migrations; applied migrations never change (an
 * index in the field was written by exactly this text), so the fixture is pinned by hash.
 */
it('the v1 and v2 migrations are unchanged, so a v2 fixture built from them is what v2 wrote', () => {
  expect(MIGRATIONS.length).toBeGreaterThanOrEqual(3);
  expect(createHash('sha256').update(MIGRATIONS.slice(0, 2).join('\0')).digest('hex'))
    .toBe('5485dacd9e59f32143b5fee2bd87edb87dca1c801a61dbf6170c0a7ccf1498d1');
});

const app: RepoRef = { upstream: 'docker.io', repo: 'library/app' };
const tool: RepoRef = { upstream: 'ghcr.io', repo: 'org/tool' };
const hosted: RepoRef = { upstream: HOSTED, repo: 'team/app' };
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const man = (name: string, size: number): ManifestRecord => ({ digest: fakeDigest(`m:${name}`), mediaType: OCI, size, body: Buffer.alloc(size, name) });

type Op =
  | { blob: string; size: number; repo?: RepoRef; at: number }
  | { manifest: ManifestRecord; links: ManifestLinks; repo: RepoRef; at: number }
  | { tag: string; repo: RepoRef; digest: string; at: number }
  | { unlink: string; repo: RepoRef };

const d = {
  shared: fakeDigest('shared'), own1: fakeDigest('own1'), own2: fakeDigest('own2'), loose: fakeDigest('loose'), late: fakeDigest('late'),
  hLayer: fakeDigest('hosted-layer'), hStale: fakeDigest('hosted-stale'), absent: fakeDigest('m:absent'),
  upper: `sha256:${'AB'.repeat(32)}`, sha512: `sha512:${'cd'.repeat(64)}`, other: 'not a digest',
};
const m = {
  img1: man('img1', 10), img2: man('img2', 20), child: man('child', 30), index1: man('index1', 40), index2: man('index2', 50),
  odd: man('odd', 60), hImg: man('hosted-img', 70), hIdx: man('hosted-idx', 80),
};

/** A bit of everything: shared layers and children, a sparse index, odd digests, a referrer, hosted content and garbage. */
const SCENE: Op[] = [
  ...([[d.shared, 1000], [d.own1, 100], [d.own2, 200], [d.loose, 50], [d.upper, 5], [d.sha512, 6]] as const).map(([blob, size]) => ({ blob, size, repo: app, at: 10 })),
  { blob: d.hLayer, size: 70, repo: hosted, at: 1 },
  { blob: d.hStale, size: 20, repo: hosted, at: 1 },
  { manifest: m.img1, links: { blobs: [d.shared, d.own1], manifests: [] }, repo: app, at: 100 },
  { manifest: m.img2, links: { blobs: [d.shared, d.own2, d.late], manifests: [] }, repo: app, at: 300 },
  { manifest: m.child, links: { blobs: [d.shared], manifests: [] }, repo: app, at: 200 },
  { manifest: m.index1, links: { blobs: [], manifests: [m.child.digest, m.img2.digest, d.absent] }, repo: app, at: 200 },
  { manifest: m.index2, links: { blobs: [], manifests: [m.child.digest] }, repo: tool, at: 400 },
  { manifest: m.odd, links: { blobs: [d.upper, d.sha512, d.other], manifests: [], subject: m.img1.digest, artifactType: 'application/vnd.example' }, repo: tool, at: 50 },
  { manifest: m.hImg, links: { blobs: [d.hLayer], manifests: [] }, repo: hosted, at: 5 },
  { manifest: m.hIdx, links: { blobs: [], manifests: [m.hImg.digest] }, repo: hosted, at: 6 },
  { blob: d.late, size: 300, repo: app, at: 20 },
  { tag: 'v1', repo: app, digest: m.img1.digest, at: 100 },
  { tag: 'multi', repo: app, digest: m.index1.digest, at: 200 },
  { tag: 'ghost', repo: app, digest: fakeDigest('never cached'), at: 200 },
  { tag: 'i', repo: tool, digest: m.index2.digest, at: 400 },
  { tag: 'v1', repo: hosted, digest: m.hIdx.digest, at: 6 },
  { unlink: m.hIdx.digest, repo: hosted },
];

/** Writes the scene into a v2 index with the statements the v2 store ran. */
function writeV2(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    for (const [v, sql] of MIGRATIONS.slice(0, 2).entries()) {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    }
  })();
  const link = db.prepare('INSERT OR IGNORE INTO repo_links (upstream, repo, digest) VALUES (?, ?, ?)');
  const ref = db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, child, kind) VALUES (?, ?, ?)');
  for (const op of SCENE) {
    if ('blob' in op) {
      db.prepare('INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)').run(op.blob, op.size, op.at, op.at);
      if (op.repo) link.run(op.repo.upstream, op.repo.repo, op.blob);
    } else if ('manifest' in op) {
      const r = op.manifest;
      db.prepare('INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at, subject, artifact_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(r.digest, r.mediaType, r.size, r.body, op.at, op.at, op.links.subject ?? null, op.links.artifactType ?? null);
      for (const b of op.links.blobs) ref.run(r.digest, b, 'blob');
      for (const c of op.links.manifests) ref.run(r.digest, c, 'manifest');
      link.run(op.repo.upstream, op.repo.repo, r.digest);
    } else if ('tag' in op) {
      db.prepare('INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES (?, ?, ?, ?, ?)').run(op.repo.upstream, op.repo.repo, op.tag, op.digest, op.at);
    } else {
      db.prepare('DELETE FROM tags WHERE upstream = ? AND repo = ? AND digest = ?').run(op.repo.upstream, op.repo.repo, op.unlink);
      db.prepare('DELETE FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?').run(op.repo.upstream, op.repo.repo, op.unlink);
    }
  }
  db.close();
}

/** Writes the scene through the (v3) store. */
async function writeStore(s: SqliteMetadataStore): Promise<void> {
  for (const op of SCENE) {
    if ('blob' in op) await s.putBlob(op.blob, op.size, op.repo, op.at);
    else if ('manifest' in op) await s.putManifest(op.manifest, op.links, op.repo, op.at);
    else if ('tag' in op) await s.putTag(op.repo, op.tag, op.digest, op.at);
    else await s.unlink(op.repo, op.unlink);
  }
}

const sorted = (u: EvictionUnit): EvictionUnit => ({ ...u, manifests: [...u.manifests].sort(), blobs: [...u.blobs].sort() });

/** The rows a second connection reads: counts kept by triggers, references decoded, interned digests. */
function rows(file: string): Record<string, unknown> {
  const db = new Database(file, { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }),
      refs: db.prepare('SELECT digest, refs FROM blobs ORDER BY digest').all(),
      parents: db.prepare('SELECT digest, parents FROM manifests ORDER BY digest').all(),
      references: db.prepare(`SELECT ${digestText('p.digest')} AS manifest, ${digestText('c.digest')} AS child, r.kind FROM manifest_refs r
                              JOIN digest_ids p ON p.id = r.manifest_id JOIN digest_ids c ON c.id = r.child_id ORDER BY 1, 2`).all(),
      interned: db.prepare(`SELECT count(*) AS total, coalesce(sum(id NOT IN (SELECT manifest_id FROM manifest_refs UNION SELECT child_id FROM manifest_refs)), 0) AS unreferenced
                            FROM digest_ids`).get(),
    };
  } finally {
    db.close();
  }
}

/** Everything the store answers about the scene's content. */
async function answers(s: SqliteMetadataStore, file: string): Promise<Record<string, unknown>> {
  const all = [...Object.values(d), ...Object.values(m).map((x) => x.digest)];
  return {
    totals: s.totals(),
    units: (await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 100 })).map(sorted),
    oldUnits: (await s.evictionCandidates({ before: 150, limit: 100 })).map(sorted),
    repositories: await s.listRepositories({ limit: 100 }),
    appTags: await s.repositoryTags(app, '', 100),
    toolTags: await s.repositoryTags(tool, '', 100),
    hostedManifests: (await s.hostedManifests(hosted.repo)).map((h) => ({ ...h, parents: [...h.parents].sort() })),
    garbage: await s.garbage(1000, 100),
    referrers: await s.referrers(m.img1.digest),
    names: await s.namesOf(all),
    ...rows(file),
  };
}

/** The same changes on both: a pull of a shared child, an eviction of the oldest units, garbage collection. */
async function change(s: SqliteMetadataStore): Promise<void> {
  s.touch(m.child.digest, 1000);
  await s.flush();
  const units = await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 3 });
  await s.removeUnits(units, () => false);
  const g = await s.garbage(1000, 100);
  await s.removeGarbage(g.blobs.map((b) => b.digest), g.manifests.map((x) => x.digest), 1000, () => false);
}

it('a v2 index migrates in place and answers every query as an index written by v3 does, before and after evictions and GC', async () => {
  const v2 = tempFile();
  writeV2(v2);
  const before = new Database(v2, { readonly: true });
  const v2References = before.prepare('SELECT manifest, child, kind FROM manifest_refs ORDER BY 1, 2').all() as Array<{ manifest: string; child: string; kind: string }>;
  const v2Counts = { refs: before.prepare('SELECT digest, refs FROM blobs ORDER BY digest').all(), parents: before.prepare('SELECT digest, parents FROM manifests ORDER BY digest').all() };
  before.close();
  expect(v2References.length).toBe(15);

  const migrated = new SqliteMetadataStore(v2, { touchFlushMs: 60_000 });
  await migrated.init();
  const v3 = tempFile();
  const written = new SqliteMetadataStore(v3, { touchFlushMs: 60_000 });
  await written.init();
  await writeStore(written);
  try {
    const got = await answers(migrated, v2);
    // The references, their counts and the interned digests are the v2 ones, one row each.
    expect(got.version).toBe(MIGRATIONS.length);
    expect(got.references).toEqual(v2References.map((r) => ({ ...r, kind: r.kind === 'manifest' ? 1 : 0 })));
    expect({ refs: got.refs, parents: got.parents }).toEqual(v2Counts);
    const distinct = new Set(v2References.flatMap((r) => [r.manifest, r.child]));
    expect(got.interned).toEqual({ total: distinct.size, unreferenced: 0 });
    // Not vacuous: a layer three manifests name, a child two indexes list, the odd digests, a sparse index, garbage.
    expect(got.refs).toContainEqual({ digest: d.shared, refs: 3 });
    expect(got.refs).toContainEqual({ digest: d.late, refs: 1 });
    expect(got.refs).toContainEqual({ digest: d.upper, refs: 1 });
    expect(got.parents).toContainEqual({ digest: m.child.digest, parents: 2 });
    expect(got.garbage).toEqual({ blobs: [{ digest: d.hStale, size: 20, repos: ['team/app'] }], manifests: [{ digest: m.hIdx.digest, size: 80 }] });
    // (The unlinked hosted index is ordinary cache content again; the odd digests are referenced, not loose.)
    expect((got.units as EvictionUnit[]).map((u) => u.digest)).toEqual([m.hIdx.digest, d.loose, m.odd.digest, m.img1.digest, m.index1.digest, m.index2.digest]);
    expect(got).toEqual(await answers(written, v3));

    await change(migrated);
    await change(written);
    const after = await answers(migrated, v2);
    expect(after).toEqual(await answers(written, v3));
    expect(after.interned).toMatchObject({ unreferenced: 0 });
    expect((after.interned as { total: number }).total).toBeLessThan(distinct.size);
  } finally {
    await migrated.close();
    await written.close();
  }
});

it('an empty v2 index migrates, and a migration that fails leaves the v2 index as it was', async () => {
  const empty = tempFile();
  const db0 = new Database(empty);
  for (const sql of MIGRATIONS.slice(0, 2)) db0.exec(sql);
  db0.pragma('user_version = 2');
  db0.close();
  const s0 = new SqliteMetadataStore(empty);
  await s0.init();
  expect(rows(empty)).toMatchObject({ version: MIGRATIONS.length, references: [], interned: { total: 0, unreferenced: 0 } });
  await s0.close();

  const file = tempFile();
  writeV2(file);
  // Something in the way of one of its statements: the transaction rolls all of it back.
  const db = new Database(file);
  db.exec('CREATE TABLE manifest_refs_v2 (x)');
  db.close();
  const s = new SqliteMetadataStore(file);
  await expect(s.init()).rejects.toThrow(/manifest_refs_v2/);
  await s.close();
  const check = new Database(file, { readonly: true });
  expect(check.pragma('user_version', { simple: true })).toBe(2);
  expect(check.prepare('SELECT count(*) AS n FROM manifest_refs WHERE kind = ?').get('blob')).toEqual({ n: 10 });
  expect(check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('digest_ids', 'refs_ins', 'refs_del', 'blobs_refs', 'manifests_parents')").get()).toEqual({ n: 4 });
  check.close();
});
