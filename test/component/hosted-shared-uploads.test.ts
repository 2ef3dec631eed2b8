/**
 * Concurrent uploads of the same content are written to disk once (shared spools,
 * src/registry/hosted/shared-spools.ts), in-process: bytes written into spools are counted at
 * FileSpool.write and commits at BlobStore.commit (no timing). Uploads whose first bytes agree
 * and then differ, clients that lie about the digest, a member that disconnects or cancels, a
 * restart with sessions on one shared file, chunked and monolithic pushes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Repository } from '../../src/registry/repository.js';
import { FileSpool } from '../../src/store/fs/fs-blob-store.js';
import { startProxy, type ProxyHarness } from './proxy-harness.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const HOSTED_CONFIG = { hostedRepositories: { 'team/**': {} } };

/** A request body arriving in 64 KiB pieces, yielding to the event loop between them; `failAt`: the client goes away there. */
function streamOf(bytes: Buffer, opts: { piece?: number; failAt?: number; holdAt?: number; hold?: () => Promise<void> } = {}): Readable {
  const piece = opts.piece ?? 64 * 1024;
  return Readable.from((async function* () {
    for (let off = 0; off < bytes.length; off += piece) {
      if (opts.failAt !== undefined && off >= opts.failAt) throw new Error('the client went away');
      if (off === opts.holdAt) await opts.hold?.();
      yield bytes.subarray(off, off + piece);
      await new Promise((r) => setImmediate(r));
    }
  })());
}

/** Resolves for every caller once `n` have arrived: uploads that are really under way at once. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return () => {
    if (++arrived === n) open();
    return opened;
  };
}

/** Two buffers of `size` bytes whose first `same` bytes are equal. */
function sharedPrefix(size: number, same: number): [Buffer, Buffer] {
  const a = randomBytes(size);
  const b = Buffer.concat([a.subarray(0, same), randomBytes(size - same)]);
  return [a, b];
}

describe('concurrent uploads of the same content', () => {
  let h: ProxyHarness | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await h?.close();
    h = undefined;
  });

  const start = async (): Promise<void> => {
    h = await startProxy(HOSTED_CONFIG);
  };
  const repo = (name: string): Repository => h!.app.namespace.resolve({}, undefined, name);
  const tmp = (): string[] => readdirSync(join(h!.app.currentConfig.dataDir, 'tmp'));
  const session = async (r: Repository): Promise<string> => ((await r.upload({ op: 'start' })).location as { session: string }).session;
  /** Counts the bytes written into spools (every spool is a FileSpool here) and the commits. */
  const count = (): { written: number; commits: () => number } => {
    const c = { written: 0, commits: () => commit.mock.calls.length };
    const write = FileSpool.prototype.write;
    vi.spyOn(FileSpool.prototype, 'write').mockImplementation(function (this: FileSpool, chunk: Buffer, position: number) {
      c.written += chunk.length;
      return write.call(this, chunk, position);
    });
    const commit = vi.spyOn(h!.app.blobs, 'commit');
    return c;
  };
  /** The stored blob, read back through the repository. */
  const stored = async (r: Repository, digest: string): Promise<Buffer> => {
    const a = await r.getBlob(digest, { method: 'GET', range: undefined });
    const parts: Buffer[] = [];
    for await (const c of a.body!.stream() as AsyncIterable<Buffer>) parts.push(c);
    return Buffer.concat(parts);
  };
  /** POST, PATCH with the whole body (digest unknown), PUT ?digest= with an empty body: skopeo, podman, docker. */
  const patchThenPut = async (r: Repository, bytes: Buffer, digest = sha(bytes), body = streamOf(bytes)): Promise<number> => {
    const id = await session(r);
    await r.upload({ op: 'append', session: id, body });
    return (await r.upload({ op: 'finish', session: id, digest })).status;
  };

  it('20 concurrent PATCH-then-PUT uploads of one 12 MiB blob: written to disk once, committed once, linked in every repository', async () => {
    await start();
    const bytes = randomBytes(12 * MiB);
    const c = count();
    const repos = Array.from({ length: 20 }, (_, i) => repo(`team/app${i}`));
    expect(await Promise.all(repos.map((r) => patchThenPut(r, bytes)))).toEqual(Array(20).fill(201));
    expect(c.commits()).toBe(1);
    expect(c.written).toBeLessThan(1.05 * bytes.length);
    expect(c.written).toBeGreaterThanOrEqual(bytes.length);
    for (const r of repos) expect((await r.getBlob(sha(bytes), { method: 'HEAD', range: undefined })).size).toBe(bytes.length);
    expect((await stored(repos[7]!, sha(bytes))).equals(bytes)).toBe(true);
    expect(h!.app.meta.totals().blobs).toBe(1);
    expect(tmp()).toEqual([]);
  });

  it('monolithic POST ?digest= and POST then PUT ?digest= with the body share too', async () => {
    await start();
    const bytes = randomBytes(6 * MiB);
    const c = count();
    // All ten get 1 MiB in before any goes on: they are under way at once, however the event loop orders them.
    const all = barrier(10);
    const held = (): Readable => streamOf(bytes, { holdAt: MiB, hold: all });
    const pushes = Array.from({ length: 10 }, async (_, i) => {
      const r = repo(`team/mono${i}`);
      if (i % 2 === 0) return (await r.upload({ op: 'start', digest: sha(bytes), body: held() })).status;
      const id = await session(r);
      return (await r.upload({ op: 'finish', session: id, digest: sha(bytes), body: held() })).status;
    });
    expect(await Promise.all(pushes)).toEqual(Array(10).fill(201));
    expect(c.commits()).toBe(1);
    expect(c.written).toBeLessThan(1.05 * bytes.length);
    expect((await stored(repo('team/mono3'), sha(bytes))).equals(bytes)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('chunked uploads (PATCH with Content-Range, several requests each) join and write once', async () => {
    await start();
    const bytes = randomBytes(4 * MiB);
    const c = count();
    const rs = [repo('team/c1'), repo('team/c2'), repo('team/c3')];
    const ids = await Promise.all(rs.map(session));
    for (let k = 0; k < 4; k++) {
      // Each round, every session sends its next 1 MiB chunk, all at once.
      await Promise.all(rs.map((r, i) => r.upload({ op: 'append', session: ids[i]!, body: streamOf(bytes.subarray(k * MiB, (k + 1) * MiB)), contentRange: `${k * MiB}-${(k + 1) * MiB - 1}` })));
    }
    for (const [i, r] of rs.entries()) expect((await r.upload({ op: 'finish', session: ids[i]!, digest: sha(bytes) })).status).toBe(201);
    expect(c.commits()).toBe(1);
    expect(c.written).toBe(bytes.length);
    expect((await stored(rs[2]!, sha(bytes))).equals(bytes)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('two blobs whose first 1 MiB is equal and the rest differs: both committed right, concurrently and one after the other', async () => {
    await start();
    const [a, b] = sharedPrefix(5 * MiB, MiB);
    expect(await Promise.all([patchThenPut(repo('team/a'), a), patchThenPut(repo('team/b'), b)])).toEqual([201, 201]);
    expect((await stored(repo('team/a'), sha(a))).equals(a)).toBe(true);
    expect((await stored(repo('team/b'), sha(b))).equals(b)).toBe(true);

    // One after the other: the second diverges after comparing 1 MiB and goes on with a copy of it.
    const [x, y] = sharedPrefix(3 * MiB, MiB);
    const c = count();
    const ix = await session(repo('team/x'));
    const iy = await session(repo('team/y'));
    await repo('team/x').upload({ op: 'append', session: ix, body: streamOf(x) });
    await repo('team/y').upload({ op: 'append', session: iy, body: streamOf(y) });
    expect(c.written).toBe(x.length + y.length);
    // The shorter of two contents where one is a prefix of the other: a copy of the prefix is committed.
    const longer = Buffer.concat([x, randomBytes(MiB)]);
    const il = await session(repo('team/l'));
    await repo('team/l').upload({ op: 'append', session: il, body: streamOf(longer) });
    expect((await repo('team/y').upload({ op: 'finish', session: iy, digest: sha(y) })).status).toBe(201);
    expect((await repo('team/x').upload({ op: 'finish', session: ix, digest: sha(x) })).status).toBe(201);
    expect((await repo('team/l').upload({ op: 'finish', session: il, digest: sha(longer) })).status).toBe(201);
    // A longer content goes on after the shared file was committed as the shorter one: it must not write into that blob.
    const p = Buffer.concat([x, randomBytes(MiB)]);
    const ip = await session(repo('team/p'));
    const iq = await session(repo('team/q'));
    await repo('team/p').upload({ op: 'append', session: ip, body: streamOf(p.subarray(0, MiB)), contentRange: `0-${MiB - 1}` });
    await repo('team/q').upload({ op: 'append', session: iq, body: streamOf(x) });
    expect((await repo('team/q').upload({ op: 'finish', session: iq, digest: sha(x) })).status).toBe(201);
    expect((await repo('team/p').upload({ op: 'finish', session: ip, digest: sha(p), body: streamOf(p.subarray(MiB)) })).status).toBe(201);
    for (const [name, want] of [['team/x', x], ['team/y', y], ['team/l', longer], ['team/q', x], ['team/p', p]] as const) {
      expect((await stored(repo(name), sha(want))).equals(want)).toBe(true);
      expect(readFileSync(h!.app.blobs.layout.blobPath(sha(want))).equals(want)).toBe(true);
    }
    expect(tmp()).toEqual([]);
  });

  it('a client that lies about the digest: the honest upload commits, the liar gets 400 DIGEST_INVALID (first or second, changed bytes or a longer body)', async () => {
    await start();
    const honest = randomBytes(4 * MiB);
    const changed = Buffer.from(honest);
    changed[3 * MiB] ^= 0xff;
    const longer = Buffer.concat([honest, randomBytes(MiB)]);
    for (const [i, lie] of [changed, longer].entries()) {
      for (const liarFirst of [true, false]) {
        const rh = repo(`team/honest${i}${liarFirst}`);
        const rl = repo(`team/liar${i}${liarFirst}`);
        const ih = await session(rh);
        const il = await session(rl);
        const send = [(): Promise<unknown> => rl.upload({ op: 'append', session: il, body: streamOf(lie) }), (): Promise<unknown> => rh.upload({ op: 'append', session: ih, body: streamOf(honest) })];
        if (!liarFirst) send.reverse();
        for (const s of send) await s();
        await expect(rl.upload({ op: 'finish', session: il, digest: sha(honest) })).rejects.toMatchObject({ code: 'DIGEST_INVALID', status: 400 });
        expect((await rh.upload({ op: 'finish', session: ih, digest: sha(honest) })).status).toBe(201);
        expect((await stored(rh, sha(honest))).equals(honest)).toBe(true);
        await expect(rl.getBlob(sha(honest), { method: 'HEAD', range: undefined })).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
        expect(readFileSync(h!.app.blobs.layout.blobPath(sha(honest))).equals(honest)).toBe(true);
        await h!.app.blobs.delete(sha(honest));
      }
    }
    // Concurrently, the liar's changed bytes interleaved with the honest ones.
    const rh = repo('team/honest-c');
    const rl = repo('team/liar-c');
    const [ok, lied] = await Promise.allSettled([patchThenPut(rh, honest), patchThenPut(rl, changed, sha(honest))]);
    expect(ok).toEqual({ status: 'fulfilled', value: 201 });
    expect(lied).toMatchObject({ status: 'rejected', reason: { code: 'DIGEST_INVALID' } });
    expect((await stored(rh, sha(honest))).equals(honest)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('the first member disconnects half-way and another cancels: the others commit; the disconnected one retries on its session and links the blob', async () => {
    await start();
    const bytes = randomBytes(6 * MiB);
    const c = count();
    const [ra, rb, rc, rd] = ['team/a', 'team/b', 'team/c', 'team/d'].map(repo) as [Repository, Repository, Repository, Repository];
    const [ia, ic] = await Promise.all([ra, rc].map(session)) as [string, string];
    // a arrives first and creates the shared spool, then goes away at 3 MiB.
    await expect(ra.upload({ op: 'append', session: ia, body: streamOf(bytes, { failAt: 3 * MiB }) })).rejects.toMatchObject({ code: 'BLOB_UPLOAD_INVALID' });
    const cancelled = (async () => {
      await rc.upload({ op: 'append', session: ic, body: streamOf(bytes.subarray(0, 2 * MiB)), contentRange: `0-${2 * MiB - 1}` });
      expect((await rc.upload({ op: 'cancel', session: ic })).status).toBe(204);
    })();
    // b and d both get 1 MiB in before either goes on, so neither can finish (and close the shared file) before the other joins.
    const both = barrier(2);
    const held = (): Readable => streamOf(bytes, { holdAt: MiB, hold: both });
    expect(await Promise.all([patchThenPut(rb, bytes, sha(bytes), held()), patchThenPut(rd, bytes, sha(bytes), held()), cancelled.then(() => 201)])).toEqual([201, 201, 201]);
    expect((await stored(rb, sha(bytes))).equals(bytes)).toBe(true);
    expect(c.commits()).toBe(1);
    expect(c.written).toBeLessThan(1.05 * bytes.length);
    // a's session is still there (at 0 bytes); its retry compares with the committed file and links the blob.
    expect((await ra.upload({ op: 'status', session: ia })).headers.range).toBe('0-0');
    const before = c.written;
    await ra.upload({ op: 'append', session: ia, body: streamOf(bytes) });
    expect((await ra.upload({ op: 'finish', session: ia, digest: sha(bytes) })).status).toBe(201);
    expect(c.written).toBe(before);
    expect(c.commits()).toBe(1);
    expect((await stored(ra, sha(bytes))).equals(bytes)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('the commit of the shared file fails after the file was renamed: the first gets the error, the others commit copies, newcomers do not join', async () => {
    await start();
    const bytes = randomBytes(3 * MiB);
    const rs = ['team/a', 'team/b', 'team/c'].map(repo);
    const ids = await Promise.all(rs.map(session));
    for (const [i, r] of rs.entries()) await r.upload({ op: 'append', session: ids[i]!, body: streamOf(bytes) });
    const blobs = h!.app.blobs;
    const commit = blobs.commit.bind(blobs);
    vi.spyOn(blobs, 'commit').mockImplementationOnce(async (spool, digest) => {
      await commit(spool, digest);
      throw new Error('the disk went away after the rename');
    });
    await expect(rs[0]!.upload({ op: 'finish', session: ids[0]!, digest: sha(bytes) })).rejects.toThrow('the disk went away');
    const late = repo('team/late');
    const il = await session(late);
    await late.upload({ op: 'append', session: il, body: streamOf(bytes) });
    for (const [r, id] of [[rs[1]!, ids[1]!], [rs[2]!, ids[2]!], [late, il]] as const) {
      expect((await r.upload({ op: 'finish', session: id, digest: sha(bytes) })).status).toBe(201);
      expect((await stored(r, sha(bytes))).equals(bytes)).toBe(true);
    }
    expect(tmp()).toEqual([]);
  });

  it('over HTTP: a client that drops its connection mid-body does not stop the others', async () => {
    // Anonymous pushes: an empty htpasswd and one rule.
    const htpasswd = join(tmpdir(), `regcache-shared-uploads-${process.pid}.htpasswd`);
    writeFileSync(htpasswd, '');
    h = await startProxy({ ...HOSTED_CONFIG, auth: { htpasswd, anonymousPull: true, rules: [{ users: ['anonymous'], repositories: ['team/**'], actions: ['push'] }] } });
    rmSync(htpasswd);
    const bytes = randomBytes(8 * MiB);
    const base = `http://127.0.0.1:${h!.app.mainPort}`;
    const post = async (name: string): Promise<string> => {
      const r = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
      expect(r.status).toBe(202);
      return new URL(r.headers.get('location')!, base).toString();
    };
    const c = count();
    // The first client sends half of its PATCH body, then its socket goes.
    const dropped = await post('team/drop');
    await new Promise<void>((resolve) => {
      const req = request(dropped, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) } });
      req.on('error', () => resolve());
      req.write(bytes.subarray(0, 4 * MiB), () => setTimeout(() => {
        req.destroy();
        resolve();
      }, 200));
    });
    const push = async (name: string): Promise<number> => {
      const loc = await post(name);
      const p = await fetch(loc, { method: 'PATCH', body: new Uint8Array(bytes), headers: { 'content-type': 'application/octet-stream' } });
      expect(p.status).toBe(202);
      const u = new URL(p.headers.get('location')!, base);
      u.searchParams.set('digest', sha(bytes));
      return (await fetch(u, { method: 'PUT' })).status;
    };
    expect(await Promise.all(['team/h1', 'team/h2', 'team/h3'].map(push))).toEqual([201, 201, 201]);
    expect(c.commits()).toBe(1);
    expect(c.written).toBeLessThan(1.05 * bytes.length);
    expect((await stored(repo('team/h2'), sha(bytes))).equals(bytes)).toBe(true);
  });

  it('a restart with two sessions on one shared file: each resumes and finishes right (one goes on with a copy)', async () => {
    await start();
    const [x, y] = sharedPrefix(3 * MiB, MiB);
    const ra = repo('team/a');
    const rb = repo('team/b');
    const ia = await session(ra);
    const ib = await session(rb);
    await ra.upload({ op: 'append', session: ia, body: streamOf(x.subarray(0, 2 * MiB)), contentRange: `0-${2 * MiB - 1}` });
    await rb.upload({ op: 'append', session: ib, body: streamOf(y.subarray(0, MiB)), contentRange: `0-${MiB - 1}` });
    // Both records name one file.
    expect(tmp()).toHaveLength(1);
    h = await h!.restart();
    const ra2 = repo('team/a');
    const rb2 = repo('team/b');
    expect((await rb2.upload({ op: 'status', session: ib })).headers.range).toBe(`0-${MiB - 1}`);
    // b writes other bytes after 1 MiB than a has there: it must not write them into a's file.
    await rb2.upload({ op: 'append', session: ib, body: streamOf(y.subarray(MiB)), contentRange: `${MiB}-${3 * MiB - 1}` });
    await ra2.upload({ op: 'append', session: ia, body: streamOf(x.subarray(2 * MiB)), contentRange: `${2 * MiB}-${3 * MiB - 1}` });
    expect((await ra2.upload({ op: 'finish', session: ia, digest: sha(x) })).status).toBe(201);
    expect((await rb2.upload({ op: 'finish', session: ib, digest: sha(y) })).status).toBe(201);
    expect((await stored(ra2, sha(x))).equals(x)).toBe(true);
    expect((await stored(rb2, sha(y))).equals(y)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('after a restart, the expiry of one session on a shared file keeps the file for the other', async () => {
    h = await startProxy({ ...HOSTED_CONFIG, hosted: { uploadExpiry: '1h' } });
    const bytes = randomBytes(2 * MiB);
    const ia = await session(repo('team/a'));
    const ib = await session(repo('team/b'));
    await repo('team/a').upload({ op: 'append', session: ia, body: streamOf(bytes.subarray(0, MiB)), contentRange: `0-${MiB - 1}` });
    h.clock.now += 50 * 60_000;
    await repo('team/b').upload({ op: 'append', session: ib, body: streamOf(bytes.subarray(0, MiB)), contentRange: `0-${MiB - 1}` });
    h = await h.restart();
    h.clock.now += 20 * 60_000;
    expect(await h.app.hosted.expireUploads()).toBe(1);
    await expect(repo('team/a').upload({ op: 'status', session: ia })).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    await repo('team/b').upload({ op: 'append', session: ib, body: streamOf(bytes.subarray(MiB)), contentRange: `${MiB}-${2 * MiB - 1}` });
    expect((await repo('team/b').upload({ op: 'finish', session: ib, digest: sha(bytes) })).status).toBe(201);
    expect((await stored(repo('team/b'), sha(bytes))).equals(bytes)).toBe(true);
    expect(tmp()).toEqual([]);
  });

  it('a restart after the shared file was committed: the other session resumes from the blob\'s first bytes', async () => {
    await start();
    const bytes = randomBytes(3 * MiB);
    const ra = repo('team/a');
    const rb = repo('team/b');
    const ia = await session(ra);
    const ib = await session(rb);
    await rb.upload({ op: 'append', session: ib, body: streamOf(bytes.subarray(0, MiB)), contentRange: `0-${MiB - 1}` });
    await ra.upload({ op: 'append', session: ia, body: streamOf(bytes) });
    expect((await ra.upload({ op: 'finish', session: ia, digest: sha(bytes) })).status).toBe(201);
    h = await h!.restart();
    const rb2 = repo('team/b');
    expect((await rb2.upload({ op: 'status', session: ib })).headers.range).toBe(`0-${MiB - 1}`);
    await rb2.upload({ op: 'append', session: ib, body: streamOf(bytes.subarray(MiB)), contentRange: `${MiB}-${3 * MiB - 1}` });
    expect((await rb2.upload({ op: 'finish', session: ib, digest: sha(bytes) })).status).toBe(201);
    expect((await stored(rb2, sha(bytes))).equals(bytes)).toBe(true);
    expect(tmp()).toEqual([]);
  });
});
