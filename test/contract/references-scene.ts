/**
 * A scene of content with every kind of reference (shared layers and children, a sparse
 * index, digests regcache cannot verify, a referrer, hosted content and garbage), for the
 * schema migrations of the metadata stores: written through a MetadataStore (writeScene),
 * or as the rows the v2 stores wrote (writeV2Rows, through a SQL executor of either
 * dialect), then compared through every query a store answers (answers).
 */
import { expect } from 'vitest';
import { HOSTED, type EvictionUnit, type ManifestLinks, type ManifestRecord, type MetadataStore, type RepoRef } from '../../src/store/metadata-store.js';
import { fakeDigest } from './metadata-store.contract.js';

export const app: RepoRef = { upstream: 'docker.io', repo: 'library/app' };
export const tool: RepoRef = { upstream: 'ghcr.io', repo: 'org/tool' };
export const hosted: RepoRef = { upstream: HOSTED, repo: 'team/app' };
const man = (name: string, size: number): ManifestRecord => ({
  digest: fakeDigest(`m:${name}`), mediaType: 'application/vnd.oci.image.manifest.v1+json', size, body: Buffer.alloc(size, name),
});

export const d = {
  shared: fakeDigest('shared'), own1: fakeDigest('own1'), own2: fakeDigest('own2'), loose: fakeDigest('loose'), late: fakeDigest('late'),
  hLayer: fakeDigest('hosted-layer'), hStale: fakeDigest('hosted-stale'), absent: fakeDigest('m:absent'),
  upper: `sha256:${'AB'.repeat(32)}`, sha512: `sha512:${'cd'.repeat(64)}`, other: 'not a digest',
};
export const m = {
  img1: man('img1', 10), img2: man('img2', 20), child: man('child', 30), index1: man('index1', 40), index2: man('index2', 50),
  odd: man('odd', 60), hImg: man('hosted-img', 70), hIdx: man('hosted-idx', 80),
};

type Op =
  | { blob: string; size: number; repo: RepoRef; at: number }
  | { manifest: ManifestRecord; links: ManifestLinks; repo: RepoRef; at: number }
  | { tag: string; repo: RepoRef; digest: string; at: number }
  | { unlink: string; repo: RepoRef };

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
  // A blob that arrives after the manifest naming it.
  { blob: d.late, size: 300, repo: app, at: 20 },
  { tag: 'v1', repo: app, digest: m.img1.digest, at: 100 },
  { tag: 'multi', repo: app, digest: m.index1.digest, at: 200 },
  { tag: 'ghost', repo: app, digest: fakeDigest('never cached'), at: 200 },
  { tag: 'i', repo: tool, digest: m.index2.digest, at: 400 },
  { tag: 'v1', repo: hosted, digest: m.hIdx.digest, at: 6 },
  // Unlinked: garbage for hosted GC, ordinary cache content for retention.
  { unlink: m.hIdx.digest, repo: hosted },
];

/** How many references the scene writes (10 to blobs, 5 to index children). */
export const SCENE_REFERENCES = 15;

/** Writes the scene through a store. */
export async function writeScene(s: MetadataStore): Promise<void> {
  for (const op of SCENE) {
    if ('blob' in op) await s.putBlob(op.blob, op.size, op.repo, op.at);
    else if ('manifest' in op) await s.putManifest(op.manifest, op.links, op.repo, op.at);
    else if ('tag' in op) await s.putTag(op.repo, op.tag, op.digest, op.at);
    else await s.unlink(op.repo, op.unlink);
  }
}

/**
 * Writes the scene as the v2 stores did, into a database at schema v2: `exec` runs one
 * statement with `?` placeholders (SQLite and PostgreSQL both take ON CONFLICT DO NOTHING).
 */
export async function writeV2Rows(exec: (sql: string, params: unknown[]) => Promise<void> | void): Promise<void> {
  const link = (r: RepoRef, digest: string) => exec('INSERT INTO repo_links (upstream, repo, digest) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [r.upstream, r.repo, digest]);
  const ref = (manifest: string, child: string, kind: string) =>
    exec('INSERT INTO manifest_refs (manifest, child, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [manifest, child, kind]);
  for (const op of SCENE) {
    if ('blob' in op) {
      await exec('INSERT INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)', [op.blob, op.size, op.at, op.at]);
      await link(op.repo, op.blob);
    } else if ('manifest' in op) {
      const r = op.manifest;
      await exec('INSERT INTO manifests (digest, media_type, size, body, created_at, last_pulled_at, subject, artifact_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        [r.digest, r.mediaType, r.size, r.body, op.at, op.at, op.links.subject ?? null, op.links.artifactType ?? null]);
      for (const b of op.links.blobs) await ref(r.digest, b, 'blob');
      for (const c of op.links.manifests) await ref(r.digest, c, 'manifest');
      await link(op.repo, r.digest);
    } else if ('tag' in op) {
      await exec('INSERT INTO tags (upstream, repo, tag, digest, validated_at) VALUES (?, ?, ?, ?, ?)', [op.repo.upstream, op.repo.repo, op.tag, op.digest, op.at]);
    } else {
      await exec('DELETE FROM tags WHERE upstream = ? AND repo = ? AND digest = ?', [op.repo.upstream, op.repo.repo, op.unlink]);
      await exec('DELETE FROM repo_links WHERE upstream = ? AND repo = ? AND digest = ?', [op.repo.upstream, op.repo.repo, op.unlink]);
    }
  }
}

export const sortedUnit = (u: EvictionUnit): EvictionUnit => ({ ...u, manifests: [...u.manifests].sort(), blobs: [...u.blobs].sort() });

/** Everything a store answers about the scene's content. */
export async function answers(s: MetadataStore): Promise<Record<string, unknown>> {
  const all = [...Object.values(d), ...Object.values(m).map((x) => x.digest)];
  return {
    totals: s.totals(),
    units: (await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 100 })).map(sortedUnit),
    oldUnits: (await s.evictionCandidates({ before: 150, limit: 100 })).map(sortedUnit),
    repositories: await s.listRepositories({ limit: 100 }),
    appTags: await s.repositoryTags(app, '', 100),
    toolTags: await s.repositoryTags(tool, '', 100),
    hostedManifests: (await s.hostedManifests(hosted.repo)).map((h) => ({ ...h, parents: [...h.parents].sort() })),
    garbage: await s.garbage(1000, 100),
    referrers: await s.referrers(m.img1.digest),
    names: await s.namesOf(all),
  };
}

/** The same changes for every store: a pull of a shared child, an eviction of the oldest units, hosted GC. */
export async function change(s: MetadataStore): Promise<void> {
  s.touch(m.child.digest, 1000);
  await s.flush();
  await s.removeUnits(await s.evictionCandidates({ before: Number.MAX_SAFE_INTEGER, limit: 3 }), () => false);
  const g = await s.garbage(1000, 100);
  await s.removeGarbage(g.blobs.map((b) => b.digest), g.manifests.map((x) => x.digest), 1000, () => false);
}

/** Rows behind the answers, as a backend reads them: counts kept by triggers, references decoded, interned digests. */
export interface SceneRows {
  refs: Array<{ digest: string; refs: number }>;
  parents: Array<{ digest: string; parents: number }>;
  references: Array<{ manifest: string; child: string; kind: number }>;
  interned: { total: number; unreferenced: number };
}

/** What a v2 database held before its migration (kind as v2 wrote it: 'blob' or 'manifest'). */
export interface V2Rows {
  refs: SceneRows['refs'];
  parents: SceneRows['parents'];
  references: Array<{ manifest: string; child: string; kind: string }>;
}

export interface MigrationSide {
  store: MetadataStore;
  rows(): Promise<SceneRows>;
}

/**
 * A database migrated from `v2` (the scene written as v2 rows) answers every query exactly as
 * one the new store wrote, with the same references and counts, before and after the same
 * changes; and no interned digest outlives its last reference.
 */
export async function expectMigratedAsWritten(v2: V2Rows, migrated: MigrationSide, written: MigrationSide): Promise<void> {
  expect(v2.references.length).toBe(SCENE_REFERENCES);
  const both = async (side: MigrationSide): Promise<Record<string, unknown>> => ({ ...(await answers(side.store)), ...(await side.rows()) });
  const got = await both(migrated);
  expect(got.references).toEqual(v2.references.map((r) => ({ ...r, kind: r.kind === 'manifest' ? 1 : 0 })));
  expect({ refs: got.refs, parents: got.parents }).toEqual({ refs: v2.refs, parents: v2.parents });
  const distinct = new Set(v2.references.flatMap((r) => [r.manifest, r.child]));
  expect(got.interned).toEqual({ total: distinct.size, unreferenced: 0 });
  // Not vacuous: a layer three manifests name, a blob that came after its manifest, an odd digest, a child two indexes list, garbage.
  expect(got.refs).toContainEqual({ digest: d.shared, refs: 3 });
  expect(got.refs).toContainEqual({ digest: d.late, refs: 1 });
  expect(got.refs).toContainEqual({ digest: d.upper, refs: 1 });
  expect(got.parents).toContainEqual({ digest: m.child.digest, parents: 2 });
  expect(got.garbage).toEqual({ blobs: [{ digest: d.hStale, size: 20, repos: ['team/app'] }], manifests: [{ digest: m.hIdx.digest, size: 80 }] });
  // The unlinked hosted index is ordinary cache content again; the odd digests are referenced, not loose.
  expect((got.units as EvictionUnit[]).map((u) => u.digest)).toEqual([m.hIdx.digest, d.loose, m.odd.digest, m.img1.digest, m.index1.digest, m.index2.digest]);
  expect(got).toEqual(await both(written));

  await change(migrated.store);
  await change(written.store);
  const after = await both(migrated);
  expect(after).toEqual(await both(written));
  expect(after.interned).toMatchObject({ unreferenced: 0 });
  expect((after.interned as SceneRows['interned']).total).toBeLessThan(distinct.size);
}
