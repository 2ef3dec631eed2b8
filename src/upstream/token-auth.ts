/**
 * Registry authentication: Docker token auth (Bearer, token fetched from the realm and
 * cached per scope until expires_in) and Basic. A realm other than the upstream's own
 * origin passes the address policy (it is a URL the upstream chose, like a redirect).
 * Credentials go only to the upstream itself, or to a realm over https, or over plain
 * http only when the upstream itself is plain http on the same host (nothing to
 * downgrade); they never appear in errors.
 */
import type { Agent } from './undici.js';
import { LRUCache } from 'lru-cache';
import { refusal } from './address-policy.js';
import { readAtMost } from './body.js';
import { startDeadline, TotalDeadlineError } from './deadline.js';
import { networkError, UpstreamError } from './errors.js';
import type { Challenge } from './challenge.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface TokenAuthOptions {
  upstreamUrl: URL;
  /** The connection pool for a realm URL; rejects when the address policy refuses it. */
  dispatcherFor: (url: URL) => Promise<Agent>;
  userAgent: string;
  credentials: Credentials | undefined;
  /** Time to the realm's response headers, and longest pause in its body. */
  timeoutMs: number;
  /** Whole token answer, headers and body (0: none). */
  totalMs: number;
  now?: () => number;
}

/**
 * Whether Basic credentials may go to this realm: over https, or over http only when the
 * upstream is plain http on the same host (an https upstream's secret never goes out in
 * cleartext, whatever host the realm names).
 */
export function credentialsAllowedFor(realm: URL, upstream: URL): boolean {
  if (realm.protocol === 'https:') return true;
  return upstream.protocol === 'http:' && realm.hostname === upstream.hostname;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export class TokenAuth {
  /** Bounded: clients can name any repository, each with its own scope. */
  private readonly tokens = new LRUCache<string, CachedToken>({ max: 2000 });
  private readonly inflight = new Map<string, Promise<string>>();
  /** The last Bearer challenge seen: lets later requests fetch a token before the first 401. */
  private bearer: { realm: string; service?: string } | undefined;
  private basicRequired = false;
  private readonly credentials: Credentials | undefined;
  private readonly now: () => number;

  constructor(private readonly o: TokenAuthOptions) {
    this.credentials = o.credentials;
    this.now = o.now ?? Date.now;
  }

  private basicHeader(): string | undefined {
    if (!this.credentials) return undefined;
    return 'Basic ' + Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64');
  }

  /** The Authorization header to send for a scope, if one is known without a round trip. */
  async headerFor(scope: string): Promise<string | undefined> {
    if (this.bearer) {
      const cached = this.tokens.get(scope);
      if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
      return `Bearer ${await this.fetchToken(this.bearer.realm, this.bearer.service, scope)}`;
    }
    if (this.basicRequired) return this.basicHeader();
    return undefined;
  }

  /**
   * Handles a 401: learns the challenge and returns the header to retry with, or
   * undefined when there is nothing to retry with.
   */
  async onChallenge(challenges: Challenge[], scope: string): Promise<string | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params.realm) {
      const service = bearer.params.service;
      this.bearer = service === undefined ? { realm: bearer.params.realm } : { realm: bearer.params.realm, service };
      this.tokens.delete(scope);
      const s = bearer.params.scope ?? scope;
      return `Bearer ${await this.fetchToken(bearer.params.realm, service, s, scope)}`;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.credentials) {
      this.basicRequired = true;
      return this.basicHeader();
    }
    return undefined;
  }

  private fetchToken(realm: string, service: string | undefined, scope: string, cacheKey = scope): Promise<string> {
    const key = `${cacheKey}`;
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = this.requestToken(realm, service, scope, cacheKey).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async requestToken(realm: string, service: string | undefined, scope: string, cacheKey: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new Error('upstream sent an invalid token realm');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('upstream token realm is not http(s)');
    if (service !== undefined) url.searchParams.set('service', service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { 'user-agent': this.o.userAgent, accept: 'application/json' };
    const basic = this.basicHeader();
    if (basic && credentialsAllowedFor(url, this.o.upstreamUrl)) headers.authorization = basic;
    const deadline = this.o.totalMs > 0 ? startDeadline(this.o.totalMs, 'token answer') : undefined;
    try {
      let res;
      try {
        const agent = await this.o.dispatcherFor(url);
        res = await agent.request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: 'GET',
          headers,
          headersTimeout: this.o.timeoutMs,
          bodyTimeout: this.o.timeoutMs,
          ...(deadline ? { signal: deadline.signal } : {}),
        });
      } catch (err) {
        const refused = refusal(err);
        // A refused realm is the upstream's answer being unusable, not the upstream being down.
        if (refused) throw new UpstreamError('auth', `token realm ${url.host} is refused: ${refused.message}`);
        throw networkError(`token realm ${url.host}`, err);
      }
      let text: string;
      try {
        text = (await readAtMost(res.body, 64 * 1024)).toString('utf8');
      } catch (err) {
        if (err instanceof TotalDeadlineError) throw networkError(`token realm ${url.host}`, err);
        throw new Error(`token endpoint ${url.host}: ${(err as Error).message}`);
      }
      return this.accept(url, res.statusCode, text, cacheKey);
    } finally {
      deadline?.clear();
    }
  }

  private accept(url: URL, status: number, text: string, cacheKey: string): string {
    if (status !== 200) throw new Error(`token endpoint ${url.host} answered ${status}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`token endpoint ${url.host} sent invalid JSON`);
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new Error(`token endpoint ${url.host} sent no token`);
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    // Renew a little early so a token never expires in flight.
    this.tokens.set(cacheKey, { token, expiresAt: this.now() + Math.max(1, expiresIn - 10) * 1000 });
    return token;
  }
}
