/**
 * Upload sessions (registry/hosted/upload-sessions.ts) over durable state writes: a chunk
 * whose record cannot be written (another process holds the index past durableWaitMs) is
 * answered 503 "nothing was acknowledged, retry", and nothing of it is kept: the retry of the
 * same PATCH fits and the upload finishes with its digest. Found by review helper-27 (the
 * session had counted the chunk: the retry doubled it and the upload could only fail).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { UploadSessions } from '../../src/registry/hosted/upload-sessions.js';
import { FsBlobStore } from '../../src/store/fs/fs-blob-store.js';
import { sqliteStores } from './sqlite-store-fixture.js';

const open = sqliteStores('regcache-upload-durable-');
const dirs: string[] = [];
const others: Database.Database[] = [];
afterEach(() => {
  for (const db of others.splice(0)) {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('an upload chunk under another process\'s lock', () => {
  it('a PATCH answered 503 takes nothing: its retry fits, and the upload finishes', async () => {
    const { s: meta, file } = await open({ durableWaitMs: 200 });
    const dir = mkdtempSync(join(tmpdir(), 'regcache-upload-blobs-'));
    dirs.push(dir);
    const blobs = new FsBlobStore(dir);
    await blobs.init();
    const sessions = new UploadSessions({ blobs, meta, now: () => Date.now() });
    const id = await sessions.start('team/app');

    const chunk = Buffer.alloc(1000, 1);
    const digest = `sha256:${createHash('sha256').update(chunk).digest('hex')}`;

    // A backup (sqlite3 .backup, another process) holds the index for longer than durableWaitMs.
    const other = new Database(file);
    others.push(other);
    other.exec('BEGIN EXCLUSIVE');
    const first = await sessions.append(id, 'team/app', Readable.from([chunk]), undefined).then(() => undefined, (e: unknown) => e as { status?: number; message: string });
    expect(first?.status).toBe(503); // "nothing was acknowledged, retry"
    other.exec('COMMIT');

    // The client retries the same PATCH, as told.
    const size = await sessions.append(id, 'team/app', Readable.from([chunk]), undefined);
    const fin = await sessions.finish(id, 'team/app', digest, undefined, {
      commit: async () => undefined, link: async () => true,
    }).then(() => 'ok', (e: unknown) => (e as { code?: string }).code);
    expect(size).toBe(chunk.length);
    expect(fin).toBe('ok');
  });
});
