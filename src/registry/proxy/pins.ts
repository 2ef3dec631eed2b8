import type { PinWatch } from '../../store/metadata-store.js';

/**
 * Digests in use right now (being served or being fetched). Retention never deletes a
 * pinned digest, so no reader ever has a file removed under it.
 */
export class Pins {
  private readonly counts = new Map<string, number>();
  /** Open watches: each collects the digests pinned while it is open. */
  private readonly watches = new Set<Set<string>>();

  pin(digest: string): () => void {
    this.counts.set(digest, (this.counts.get(digest) ?? 0) + 1);
    for (const w of this.watches) w.add(digest);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.counts.get(digest) ?? 1) - 1;
      if (n <= 0) this.counts.delete(digest);
      else this.counts.set(digest, n);
    };
  }

  has(digest: string): boolean {
    return this.counts.has(digest);
  }

  /**
   * Tells whether a digest is pinned now or was at any moment since the watch began, even if
   * released since (an eviction whose rows go on another thread asks that when they are gone:
   * a push that pinned a layer from its check to its commit may be over by then).
   */
  watch(): PinWatch {
    const seen = new Set<string>();
    this.watches.add(seen);
    return { pinned: (d) => seen.has(d) || this.counts.has(d), end: () => { this.watches.delete(seen); } };
  }

  /** Digests garbage collection may be deleting right now, with what their deletion waits on. */
  private readonly deleting = new Map<string, { done: Promise<void>; resolve: () => void }>();

  /**
   * GC marks its candidates before it removes their rows, and unmarks each once its file is
   * gone (or kept): a writer that pins a digest and then awaits settled() never commits a
   * file that a deletion in flight would remove after it.
   */
  markDeleting(digest: string): void {
    if (this.deleting.has(digest)) return;
    let resolve!: () => void;
    const done = new Promise<void>((r) => { resolve = r; });
    this.deleting.set(digest, { done, resolve });
  }

  unmarkDeleting(digest: string): void {
    const d = this.deleting.get(digest);
    if (!d) return;
    this.deleting.delete(digest);
    d.resolve();
  }

  /** Resolves when no deletion of `digest` is in flight. */
  async settled(digest: string): Promise<void> {
    await this.deleting.get(digest)?.done;
  }

}
