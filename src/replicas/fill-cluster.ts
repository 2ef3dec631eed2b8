/**
 * One upstream fetch per digest across replicas: before a replica fills a digest it takes
 * the digest's fill lease; a replica that finds the lease held streams the holder's live
 * fill instead (peer-fill.ts). Held leases are renewed together on one timer and released
 * when the fill ends (committed, failed or streamed through); a holder that dies stops
 * renewing and its lease expires, and a replica that cannot reach a holder takes the lease
 * over at once (the holder is gone: no one else can be reading from it).
 */
import type { LeaseHolder, Leases } from './leases.js';
import { fetchPeerFill, type PeerFill } from './peer-fill.js';

export interface FillCluster {
  /** undefined: this replica now holds the fill of `digest`; else the replica that does. */
  claim(digest: string): Promise<LeaseHolder | undefined>;
  /** The fill of `digest` here is over. */
  release(digest: string): void;
  /** The holder's live fill; undefined when it has none; throws PeerUnreachable. */
  fetch(peer: LeaseHolder, digest: string): Promise<PeerFill | undefined>;
  /** Takes the lease from an unreachable holder; true when now ours. */
  takeOver(digest: string, peer: LeaseHolder): Promise<boolean>;
}

const leaseName = (digest: string): string => `fill:${digest}`;

export class LeasedFills implements FillCluster {
  private readonly held = new Set<string>();

  constructor(
    private readonly leases: Leases,
    private readonly secret: string,
    private readonly onError: (err: Error) => void,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(digest: string): Promise<LeaseHolder | undefined> {
    const holder = await this.leases.acquire(leaseName(digest));
    if (!holder) this.held.add(digest);
    return holder;
  }

  release(digest: string): void {
    if (!this.held.delete(digest)) return;
    this.leases.release(leaseName(digest)).catch((err: Error) => this.onError(err));
  }

  fetch(peer: LeaseHolder, digest: string): Promise<PeerFill | undefined> {
    return fetchPeerFill(peer.address, digest, this.secret, this.now());
  }

  async takeOver(digest: string, peer: LeaseHolder): Promise<boolean> {
    const ok = await this.leases.takeOver(leaseName(digest), peer.holder);
    if (ok) this.held.add(digest);
    return ok;
  }

  /** Renews every held fill lease (called on the replica service's timer). */
  async renew(): Promise<void> {
    const lost = await this.leases.renew([...this.held].map(leaseName));
    for (const name of lost) this.held.delete(name.slice('fill:'.length));
  }

  get holding(): number {
    return this.held.size;
  }
}
