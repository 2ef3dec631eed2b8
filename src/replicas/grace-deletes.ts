/**
 * Blob deletion for retention on shared stores: another replica may be streaming the object
 * from the bucket right now (its pins are its own), so the object is deleted only after a
 * grace period, and only if by then nothing brought the blob back: no replica is filling it
 * (the deleter takes the digest's fill lease for the delete, so no fill can commit
 * meanwhile) and no row names it again. Deletes pending when the process stops are dropped:
 * the object stays in the bucket without a row (never served; `regcache fsck` territory).
 */
export interface GraceDeleteDeps {
  graceMs: number;
  /** Takes the digest's fill lease; false when another replica holds it (a fill is running). */
  claim(digest: string): Promise<boolean>;
  release(digest: string): void;
  /** Whether the metadata store has a row for the blob (re-added since the sweep). */
  hasRow(digest: string): Promise<boolean>;
  deleteNow(digest: string): Promise<void>;
  onError(err: Error, digest: string): void;
}

export class GraceDeletes {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly d: GraceDeleteDeps) {}

  /** Schedules the delete (the sweep's `blobs.delete`). */
  async delete(digest: string): Promise<void> {
    if (this.timers.has(digest)) return;
    const t = setTimeout(() => {
      this.timers.delete(digest);
      this.run(digest).catch((err: Error) => this.d.onError(err, digest));
    }, this.d.graceMs);
    t.unref();
    this.timers.set(digest, t);
  }

  /** Deletes waiting for their grace period. */
  get pending(): number {
    return this.timers.size;
  }

  private async run(digest: string): Promise<void> {
    if (!(await this.d.claim(digest))) return;
    try {
      if (await this.d.hasRow(digest)) return;
      await this.d.deleteNow(digest);
    } finally {
      this.d.release(digest);
    }
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
