/**
 * The HTTP client for one configured upstream registry: a keep-alive undici Agent (pooled
 * per origin, so blob redirects to a CDN get their own pool), connect / header / idle-body
 * timeouts, token or Basic auth with one retry, bounded redirects without carrying
 * Authorization across hosts, and fail-fast when the upstream is marked down.
 * The configured origin has its own pool; every other origin (redirect targets, token
 * realms) goes through a second pool whose DNS lookup enforces the address policy.
 * It knows nothing about the cache or the store.
 */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { Agent } from './undici.js';
import type { UpstreamConfig } from '../config/types.js';
import { AddressPolicy, refusal } from './address-policy.js';
import { discard } from './body.js';
import { startDeadline, TotalDeadlineError, type Deadline } from './deadline.js';
import { networkError, UpstreamError } from './errors.js';
import { parseChallenges } from './challenge.js';
import { causeOf, classify } from './classify.js';
import { UpstreamHealth } from './health.js';
import { TokenAuth } from './token-auth.js';
import { HttpProtocolError } from '../protocol/http1.js';
import { SocketGetPool } from './socket-get.js';

export { UpstreamError, type UpstreamFailure } from './errors.js';

export interface UpstreamRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path and query on the upstream, starting with /v2/. */
  path: string;
  headers?: Record<string, string>;
  /** Repository the request is for: the token scope is `repository:<repo>:pull` (or `pull,push`). */
  repo?: string;
  /** Ask for push rights on `repo` (writes: uploads, manifest PUT, DELETE). */
  push?: boolean;
  /** Request body (writes). A stream cannot be replayed: it is sent once, after auth is known. */
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /**
   * A blob GET whose caller takes the body lent (the fill): it is read by socket-get.ts into
   * one reused buffer (unless `blobReader: undici`). Other callers get undici's body: a
   * consumer that streams the bytes on (a copy's upload, a sync's store write) would need a
   * copy of every read, which costs more than undici's own buffers.
   */
  lendBody?: boolean;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** Where the answer finally came from (after redirects). */
  url: URL;
}

export interface UpstreamObserver {
  request(upstream: string, method: string, status: string, seconds: number): void;
  /** A request that counts against the upstream's health failed; `cause` says why (classify.ts causeOf). */
  failed?(upstream: string, cause: string, message: string): void;
  /** The failure detector marked the upstream down, or up again (once per transition). */
  health?(upstream: string, state: 'down' | 'up', lastCause: string | undefined): void;
}

export interface UpstreamClientOptions {
  /** `manifestTotal`: whole-answer deadline for manifests, referrers, tag lists and tokens (0 or absent: none). */
  timeouts: { connect: number; headers: number; idle: number; manifestTotal?: number };
  health: { maxFails: number; failTimeout: number };
  userAgent: string;
  observer?: UpstreamObserver;
  /** Told when the failure detector marks an upstream down, and when it answers again (events). */
  onHealth?: (host: string, up: boolean, cause: string | undefined) => void;
  now?: () => number;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Small answers whose whole exchange is bounded, and whose redirects stay on the registry's host. */
const METADATA_PATH = /\/(manifests|referrers)\/[^/]+$|\/tags\/list$/;

function isMetadata(path: string): boolean {
  return METADATA_PATH.test(path.split('?')[0]!);
}

/** A blob GET (not an upload) whose body the caller takes lent: read by socket-get.ts, into one reused buffer. */
const BLOB_PATH = /\/blobs\/[^/]+$/;
function isLentBlobGet(req: UpstreamRequest): boolean {
  return req.lendBody === true && req.method === 'GET' && req.body === undefined && BLOB_PATH.test(req.path.split('?')[0]!);
}


export class UpstreamClient {
  readonly host: string;
  readonly baseUrl: URL;
  readonly health: UpstreamHealth;
  /** Docker Hub's `ratelimit-remaining` as last seen (e.g. `98;w=21600`), for the admin status. */
  rateLimit: { remaining: string; at: number } | undefined;
  /** Connections to the configured origin: trusted, whatever it resolves to. */
  private readonly agent: Agent;
  /** Connections to any other origin: the address policy runs in its DNS lookup. */
  private readonly outbound: Agent;
  /** Blob GETs, to any origin (the address policy goes in as the lookup for other origins). */
  private readonly sockets: SocketGetPool;
  private readonly policy: AddressPolicy;
  private readonly auth: TokenAuth;

  constructor(readonly config: UpstreamConfig, private readonly opts: UpstreamClientOptions) {
    this.host = config.host;
    this.baseUrl = new URL(config.url);
    const connect: Record<string, unknown> = { timeout: opts.timeouts.connect };
    const ca = config.ca ? [...rootCertificates, readFileSync(config.ca, 'utf8')] : undefined;
    if (ca) connect.ca = ca;
    if (config.insecureSkipVerify) connect.rejectUnauthorized = false;
    this.sockets = new SocketGetPool({
      timeouts: opts.timeouts,
      tls: { ...(ca ? { ca } : {}), rejectUnauthorized: !config.insecureSkipVerify },
      keepAliveMs: 30_000,
    });
    const pool = {
      headersTimeout: opts.timeouts.headers,
      bodyTimeout: opts.timeouts.idle,
      keepAliveTimeout: 30_000,
      connections: 64,
      pipelining: 1,
    };
    this.agent = new Agent({ connect, ...pool });
    this.policy = new AddressPolicy(config.allowedHosts ?? [], this.baseUrl.hostname, `upstreams.${config.host}`);
    this.outbound = new Agent({ connect: { ...connect, lookup: this.policy.lookup }, ...pool });
    this.health = new UpstreamHealth(opts.health.maxFails, opts.health.failTimeout, opts.now);
    this.health.onChange = (up, cause) => {
      opts.onHealth?.(this.host, up, cause);
      opts.observer?.health?.(this.host, up ? 'up' : 'down', cause);
    };
    const creds = config.username !== undefined && config.password !== undefined
      ? { username: config.username, password: config.password } : undefined;
    this.auth = new TokenAuth({
      upstreamUrl: this.baseUrl,
      dispatcherFor: (url) => this.dispatcherFor(url),
      userAgent: opts.userAgent,
      credentials: creds,
      timeoutMs: opts.timeouts.headers,
      totalMs: opts.timeouts.manifestTotal ?? 0,
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  /** Sends a request, handling auth and redirects. Non-2xx answers are returned, not thrown. */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (!this.health.allow()) {
      throw new UpstreamError('down', `upstream ${this.host} is marked down after repeated failures`);
    }
    const started = performance.now();
    let statusLabel = 'error';
    try {
      const res = await this.send(req);
      statusLabel = String(res.status);
      const remaining = res.headers['ratelimit-remaining'];
      if (typeof remaining === 'string') this.rateLimit = { remaining: remaining.slice(0, 64), at: (this.opts.now ?? Date.now)() };
      if (classify(res.status).countsAsFailure) this.failed(causeOf(res.status), `${req.method} ${req.path.split('?')[0]} answered ${res.status}`);
      else this.health.success();
      return res;
    } catch (err) {
      if (classify(err).countsAsFailure) this.failed(causeOf(err), (err as Error).message);
      else this.health.success();
      throw err;
    } finally {
      this.opts.observer?.request(this.host, req.method, statusLabel, (performance.now() - started) / 1000);
    }
  }

  /** The cause of the last failure that counted against health (for logs and the admin API). */
  lastCause: string | undefined;

  private failed(cause: string, message: string): void {
    this.lastCause = cause;
    this.opts.observer?.failed?.(this.host, cause, message);
    this.health.failure(cause);
  }

  /**
   * The pool for `url`: the configured origin's, or the policed one after the checks a
   * socket lookup cannot make (allow-listed names, IP literals, which skip DNS).
   */
  private async dispatcherFor(url: URL): Promise<Agent> {
    if (url.origin === this.baseUrl.origin) return this.agent;
    await this.policy.checkHost(url.hostname);
    return this.outbound;
  }

  /** One exchange, under the total deadline when it is a manifest, referrers or tag list. */
  private async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const total = this.opts.timeouts.manifestTotal ?? 0;
    if (total <= 0 || !isMetadata(req.path)) return this.exchange(req, undefined);
    const deadline = startDeadline(total, 'answer', req.signal);
    try {
      const res = await this.exchange({ ...req, signal: deadline.signal }, deadline);
      // A trickle that runs out the deadline mid-body is the upstream failing, like a timeout before the headers.
      res.body.once('error', (err) => { if (err instanceof TotalDeadlineError) this.health.failure('answer exceeded the total deadline'); });
      deadline.holdUntilClosed(res.body);
      return res;
    } catch (err) {
      deadline.clear();
      // The deadline passing while a token was fetched surfaces here (race), not from undici.
      throw err instanceof TotalDeadlineError ? networkError(this.host, err) : err;
    }
  }

  private async exchange(req: UpstreamRequest, deadline: Deadline | undefined): Promise<UpstreamResponse> {
    const bounded = <T>(p: Promise<T>): Promise<T> => (deadline ? deadline.race(p) : p);
    const scope = req.repo ? `repository:${req.repo}:${req.push ? 'pull,push' : 'pull'}` : '';
    let authorization = await bounded(this.authHeader(scope));
    let url = new URL(this.baseUrl.pathname.replace(/\/$/, '') + req.path, this.baseUrl);
    let retriedAuth = false;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === this.baseUrl.origin;
      const headers: Record<string, string> = {
        'user-agent': this.opts.userAgent,
        via: '1.1 regcache',
        ...req.headers,
      };
      if (authorization && sameOrigin) headers.authorization = authorization;
      const res = await this.dispatch(url, req, headers);
      if (res.status === 401 && sameOrigin && !retriedAuth) {
        retriedAuth = true;
        const challenges = parseChallenges(res.headers['www-authenticate']);
        discard(res.body);
        try {
          authorization = await bounded(this.auth.onChallenge(challenges, scope));
        } catch (err) {
          if (err instanceof UpstreamError) throw err;
          if (err instanceof TotalDeadlineError) throw networkError(this.host, err);
          throw new UpstreamError('auth', `authentication with ${this.host} failed: ${(err as Error).message}`);
        }
        if (authorization === undefined) return this.dispatch(url, req, { 'user-agent': this.opts.userAgent, ...req.headers });
        hop--;
        continue;
      }
      if (!REDIRECTS.has(res.status)) return res;
      discard(res.body);
      const location = res.headers.location;
      if (typeof location !== 'string') throw new UpstreamError('redirect', `${this.host} sent a redirect without Location`);
      if (hop + 1 > MAX_REDIRECTS) throw new UpstreamError('redirect', `${this.host}: more than ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new UpstreamError('redirect', `${this.host} redirected to an invalid URL`);
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new UpstreamError('redirect', `${this.host} redirected to a non-http(s) scheme ${next.protocol}`);
      }
      if (next.username || next.password) throw new UpstreamError('redirect', `${this.host} redirected to a URL with credentials`);
      // A manifest (or listing) from another host would be stored and served as this
      // registry's content; only blobs, which are verified by digest, may live on a CDN.
      if (isMetadata(req.path) && next.hostname !== this.baseUrl.hostname) {
        const what = req.path.includes('/tags/list') ? 'tag list' : 'manifest';
        throw new UpstreamError('redirect', `${this.host} redirected a ${what} request to ${next.host}, which is refused: ${what} redirects are only followed on ${this.baseUrl.hostname}`);
      }
      url = next;
    }
  }

  private async authHeader(scope: string): Promise<string | undefined> {
    try {
      return await this.auth.headerFor(scope);
    } catch (err) {
      // A realm that cannot be reached is the upstream being unreachable (stale tags are
      // served, the failure detector counts it); only a refusal is an auth failure.
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError('auth', `authentication with ${this.host} failed: ${(err as Error).message}`);
    }
  }

  private async dispatch(url: URL, req: UpstreamRequest, headers: Record<string, string>): Promise<UpstreamResponse> {
    try {
      if (isLentBlobGet(req) && this.config.blobReader !== 'undici') {
        const policed = url.origin !== this.baseUrl.origin;
        if (policed) await this.policy.checkHost(url.hostname);
        const res = await this.sockets.get({ url, headers, ...(req.signal ? { signal: req.signal } : {}), ...(policed ? { lookup: this.policy.lookup } : {}) });
        return { status: res.status, headers: res.headers, body: res.body, url };
      }
      const agent = await this.dispatcherFor(url);
      const opts: Parameters<Agent['request']>[0] = {
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers,
        highWaterMark: 256 * 1024,
      };
      if (req.body !== undefined) opts.body = req.body;
      if (req.signal) opts.signal = req.signal;
      const res = await agent.request(opts);
      return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body, url };
    } catch (err) {
      // Only a redirect target can be refused: the configured origin is not policed.
      const refused = refusal(err);
      if (refused) throw new UpstreamError('redirect', `${this.host} redirected to ${url.host}, which is refused: ${refused.message}`);
      if (err instanceof HttpProtocolError) throw new UpstreamError('protocol', `${this.host}: invalid HTTP answer: ${err.message}`);
      if (err instanceof UpstreamError && (err.reason === 'timeout' || err.reason === 'protocol' || err.reason === 'unreachable')) {
        throw new UpstreamError(err.reason, `${this.host}: ${err.message}`, err.errno);
      }
      throw networkError(this.host, err);
    }
  }

  async close(): Promise<void> {
    this.sockets.close();
    await Promise.all([this.agent.close().catch(() => undefined), this.outbound.close().catch(() => undefined)]);
  }

  /** Closes at once, cutting in-flight requests. */
  async destroy(): Promise<void> {
    this.sockets.destroy();
    await Promise.all([this.agent.destroy().catch(() => undefined), this.outbound.destroy().catch(() => undefined)]);
  }
}
