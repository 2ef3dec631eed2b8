/**
 * Registry authentication: Docker token auth (Bearer, token fetched from the realm and
 * cached per scope until expires_in) and Basic. Credentials go only to the upstream itself
 * or to a token realm on the same host or over https; they never appear in errors.
 */
import { Agent } from 'undici';
import { LRUCache } from 'lru-cache';
import { readAtMost } from './body.js';
import { networkError } from './errors.js';
import type { Challenge } from './challenge.js';

export interface Credentials {
  username: string;
  password: string;
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

  constructor(
    private readonly upstreamUrl: URL,
    private readonly agent: Agent,
    private readonly userAgent: string,
    private readonly credentials: Credentials | undefined,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

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

  private credentialsAllowedFor(realm: URL): boolean {
    return realm.hostname === this.upstreamUrl.hostname || realm.protocol === 'https:';
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
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'application/json' };
    const basic = this.basicHeader();
    if (basic && this.credentialsAllowedFor(url)) headers.authorization = basic;
    let res;
    try {
      res = await this.agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'GET',
        headers,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw networkError(`token realm ${url.host}`, err);
    }
    let text: string;
    try {
      text = (await readAtMost(res.body, 64 * 1024)).toString('utf8');
    } catch (err) {
      throw new Error(`token endpoint ${url.host}: ${(err as Error).message}`);
    }
    if (res.statusCode !== 200) throw new Error(`token endpoint ${url.host} answered ${res.statusCode}`);
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
