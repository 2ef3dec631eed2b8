/**
 * Digests in use right now (being served or being fetched). Retention never deletes a
 * pinned digest, so no reader ever has a file removed under it.
 */
export class Pins {
  private readonly counts = new Map<string, number>();

  pin(digest: string): () => void {
    this.counts.set(digest, (this.counts.get(digest) ?? 0) + 1);
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

}
