/**
 * Shared spools (src/registry/hosted/shared-spools.ts) on in-memory spools: the one commit of
 * a shared file, whatever the members that finish while it is under way see meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { SharedSpools, type BlobCommit } from '../../src/registry/hosted/shared-spools.js';
import type { BlobStore, Spool } from '../../src/store/blob-store.js';

/** A spool in memory; `truncateGate`, when set, holds every truncate until it resolves. */
class MemSpool implements Spool {
  bytes = Buffer.alloc(0);
  truncateGate: Promise<void> | undefined;
  constructor(readonly path: string) {}
  async write(chunk: Buffer, position: number): Promise<void> {
    const end = position + chunk.length;
    if (end > this.bytes.length) this.bytes = Buffer.concat([this.bytes, Buffer.alloc(end - this.bytes.length)]);
    chunk.copy(this.bytes, position);
  }
  async writev(chunks: readonly Buffer[], position: number): Promise<void> {
    await this.write(Buffer.concat(chunks), position);
  }
  async read(into: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.bytes.copy(into, offset, position, Math.min(position + length, this.bytes.length));
  }
  async sync(): Promise<void> {}
  async truncate(length: number): Promise<void> {
    await this.truncateGate;
    this.bytes = this.bytes.subarray(0, length);
  }
  async close(): Promise<void> {}
}

function memBlobs(): BlobStore {
  let n = 0;
  return {
    createSpool: async () => new MemSpool(`/tmp/mem-${n++}.part`),
    discard: async () => undefined,
  } as unknown as BlobStore;
}

/** A BlobCommit that counts commits and links whatever was committed with the right size. */
function store(): BlobCommit & { commits: number; links: number } {
  let committed: number | undefined;
  const s = {
    commits: 0,
    links: 0,
    commit: async (spool: Spool, size: number) => {
      s.commits++;
      committed = size;
      void spool;
    },
    link: async (size: number) => {
      if (committed !== size) return false;
      s.links++;
      return true;
    },
  };
  return s;
}

describe('shared spools', () => {
  it('members that finish while the first one seals the file wait for its commit and link (one commit)', async () => {
    const shared = new SharedSpools(memBlobs(), () => undefined);
    const file = new MemSpool('/tmp/shared.part');
    const bytes = Buffer.from('the same content, uploaded three times at once');
    const members = ['a', 'b', 'c'].map((id) => shared.join('k', file, id));
    for (const m of members) expect(await m.put(bytes, 0)).toBe(bytes.length);
    expect(file.bytes.equals(bytes)).toBe(true);

    // The first commit is held between sealing the file and committing it.
    let release!: () => void;
    file.truncateGate = new Promise((r) => { release = r; });
    const to = store();
    const first = members[0]!.commit('sha256:x', bytes.length, to);
    await new Promise((r) => setImmediate(r));
    const others = members.slice(1).map((m) => m.commit('sha256:x', bytes.length, to));
    await new Promise((r) => setImmediate(r));
    release();
    await Promise.all([first, ...others]);
    expect(to.commits).toBe(1);
    expect(to.links).toBe(2);
  });

  it('a failed commit of the shared file: the others commit copies', async () => {
    const shared = new SharedSpools(memBlobs(), () => undefined);
    const file = new MemSpool('/tmp/shared.part');
    const bytes = Buffer.from('content whose first commit fails');
    const members = ['a', 'b'].map((id) => shared.join('k', file, id));
    for (const m of members) await m.put(bytes, 0);
    const to = store();
    const ok = to.commit;
    let copied: Spool | undefined;
    to.commit = async (spool, size) => {
      if (spool === file) {
        to.commits++;
        throw new Error('the disk went away');
      }
      copied = spool;
      return ok(spool, size);
    };
    const first = members[0]!.commit('sha256:x', bytes.length, to);
    const second = members[1]!.commit('sha256:x', bytes.length, to);
    await expect(first).rejects.toThrow('the disk went away');
    await second;
    expect(to.commits).toBe(2);
    expect((copied as MemSpool).bytes.equals(bytes)).toBe(true);
  });
});
