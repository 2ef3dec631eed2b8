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

  /** Digests whose file may be being deleted right now (GC, eviction), with what their deletion waits on. */
  private readonly deleting = new Map<string, { marks: number; done: Promise<void>; resolve: () => void }>();

  /**
   * A deletion marks its digest before it decides (GC before it removes rows, eviction before
   * its last check of pins and row) and unmarks it once the file is gone or kept: a writer
   * that pins a digest and then awaits settled() never renames a file into place that a
   * deletion in flight would remove after it. Marks count: two deleters of one digest each
   * unmark their own.
   */
  markDeleting(digest: string): void {
    const d = this.deleting.get(digest);
    if (d) {
      d.marks++;
      return;
    }
    let resolve!: () => void;
    const done = new Promise<void>((r) => { resolve = r; });
    this.deleting.set(digest, { marks: 1, done, resolve });
  }

  unmarkDeleting(digest: string): void {
    const d = this.deleting.get(digest);
    if (!d || --d.marks > 0) return;
    this.deleting.delete(digest);
    d.resolve();
  }

  /** Resolves when no deletion of `digest` is in flight. */
  async settled(digest: string): Promise<void> {
    for (let d = this.deleting.get(digest); d; d = this.deleting.get(digest)) await d.done;
  }
}
