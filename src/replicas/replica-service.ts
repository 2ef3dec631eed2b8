/**
 * This process as one replica of a cluster on shared storage: serves its live fills to
 * peers on the internal listener (`GET /fills/<digest>`, fill-token.ts), renews its fill
 * leases, and competes for the leader lease (periodic retention, sync and copy jobs run on the
 * leader only; onLeaderChange tells the jobs service when this replica gains or loses it).
 * On stop it releases every lease it holds, so peers need not wait for them to expire.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { BlobStore } from '../store/blob-store.js';
import { isValidDigest } from '../protocol/grammar.js';
import { NOTHING_TO_RELOAD, type ReloadResult, type Service } from '../service.js';
import { LeasedFills } from './fill-cluster.js';
import { checkFillToken } from './fill-token.js';
import { GraceDeletes } from './grace-deletes.js';
import { Leases } from './leases.js';
import { fetchPeerUpload, uploadSubject } from './peer-upload.js';

export type ReplicasConfig = NonNullable<Config['replicas']>;

export interface ReplicaDeps {
  pool: pg.Pool;
  /** This replica's live fill of a digest, from byte 0 (BlobCache.liveFill). */
  liveFill(digest: string): Promise<{ size: number | undefined; body: Readable } | undefined>;
  log: Logger;
  now?: () => number;
  blobs: Pick<BlobStore, 'delete'>;
  /** Whether a blob is back (a row names it) or in use here (pinned, filling): retention keeps it. */
  inUse(digest: string): Promise<boolean>;
  /** The bytes of an upload session whose spool is here (UploadSessions.bytesOf), for the replica it moves to. */
  uploadBytes?(id: string): Promise<{ size: number; body: Readable } | undefined>;
}

const LEADER = 'leader';

export class ReplicaService implements Service {
  readonly name = 'replicas';
  readonly fills: LeasedFills;
  /** Retention's blob deletes, after `evictionGrace`. */
  readonly deletes: GraceDeletes;
  readonly id: string;
  private readonly leases: Leases;
  private readonly now: () => number;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private leader = false;
  private ticking: Promise<void> = Promise.resolve();
  private readonly leaderListeners = new Set<(leader: boolean) => void>();

  constructor(private readonly cfg: ReplicasConfig, private readonly d: ReplicaDeps) {
    this.now = d.now ?? Date.now;
    this.id = cfg.id ?? cfg.advertise;
    this.leases = new Leases(d.pool, { holder: this.id, address: cfg.advertise }, cfg.leaseTTL);
    const fillLease = (digest: string): string => `fill:${digest}`;
    this.deletes = new GraceDeletes({
      graceMs: cfg.evictionGrace,
      claim: async (digest) => (await this.leases.acquire(fillLease(digest))) === undefined,
      release: (digest) => void this.leases.release(fillLease(digest)).catch(() => undefined),
      hasRow: (digest) => d.inUse(digest),
      deleteNow: (digest) => d.blobs.delete(digest),
      onError: (err, digest) => d.log.warn({ digest, err: err.message }, 'cannot delete an evicted blob; it stays in the store'),
    });
    this.uploads = { address: cfg.advertise, fetch: (owner, id, size) => fetchPeerUpload(owner, id, size, cfg.secret, this.now()) };
    this.fills = new LeasedFills(this.leases, cfg.secret, (err) => d.log.warn({ err: err.message }, 'cannot release a fill lease; it will expire'), this.now);
  }

  /** Whether this replica holds the leader lease (as of its last renewal). */
  isLeader(): boolean {
    return this.leader;
  }

  /** Calls `cb` each time this replica becomes or stops being the leader; returns an unsubscribe. */
  onLeaderChange(cb: (leader: boolean) => void): () => void {
    this.leaderListeners.add(cb);
    return () => void this.leaderListeners.delete(cb);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.d.log.info({ replica: this.id, leader }, leader ? 'this replica is the leader' : 'this replica is no longer the leader');
    for (const cb of this.leaderListeners) cb(leader);
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.cfg.listen.port, this.cfg.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    await this.tick();
    this.timer = setInterval(() => { this.ticking = this.tick(); }, Math.max(100, Math.floor(this.cfg.leaseTTL / 3)));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.fills.renew();
      const holder = await this.leases.acquire(LEADER);
      this.setLeader(holder === undefined);
    } catch (err) {
      // Without the database we cannot know: stop acting as the leader.
      this.setLeader(false);
      this.d.log.warn({ err: (err as Error).message }, 'cannot renew replica leases');
    }
  }

  /** Upload sessions move between replicas through the internal listener (peer-upload.ts). */
  readonly uploads: { address: string; fetch(owner: string, id: string, size: number): Promise<Readable> };

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = /^\/uploads\/([0-9a-f]{1,64})$/.exec(req.url ?? '');
    if (u && req.method === 'GET') return this.handleUpload(req, res, u[1]!);
    const m = /^\/fills\/([^/?]+)$/.exec(req.url ?? '');
    const digest = m ? decodeURIComponent(m[1]!) : '';
    if (req.method !== 'GET' || !m || !isValidDigest(digest)) {
      res.writeHead(404).end();
      return;
    }
    const auth = /^RegcacheFill (\S+)$/.exec(req.headers.authorization ?? '');
    if (!checkFillToken(this.cfg.secret, digest, auth?.[1], this.now())) {
      res.writeHead(401).end();
      return;
    }
    const live = await this.d.liveFill(digest).catch(() => undefined);
    if (!live) {
      res.writeHead(404).end();
      return;
    }
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
    if (live.size !== undefined) {
      headers['content-length'] = live.size;
      headers['x-regcache-size'] = String(live.size);
    }
    res.writeHead(200, headers);
    // A failed fill must reach the peer as an aborted response, never a clean end.
    live.body.once('error', () => res.destroy());
    res.once('close', () => live.body.destroy());
    live.body.pipe(res);
  }

  private async handleUpload(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const auth = /^RegcacheFill (\S+)$/.exec(req.headers.authorization ?? '');
    if (!checkFillToken(this.cfg.secret, uploadSubject(id), auth?.[1], this.now())) {
      res.writeHead(401).end();
      return;
    }
    const held = await this.d.uploadBytes?.(id).catch(() => undefined);
    if (!held) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': held.size });
    held.body.once('error', () => res.destroy());
    res.once('close', () => held.body.destroy());
    held.body.pipe(res);
  }

  async stop(): Promise<void> {
    this.deletes.stop();
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.leader = false;
    await this.leases.releaseAll().catch(() => undefined);
  }

  async reload(): Promise<ReloadResult> {
    return NOTHING_TO_RELOAD;
  }

  async status(): Promise<Record<string, unknown>> {
    return { replica: this.id, leader: this.leader, fillLeases: this.fills.holding, pendingDeletes: this.deletes.pending };
  }
}
