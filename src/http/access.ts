/**
 * Optional access control (config `auth`): HTTP Basic against an htpasswd file of bcrypt
 * entries (`htpasswd -B`). Unknown users are checked against a dummy hash so the answer
 * takes as long as for a known one; verified credentials are remembered for a minute
 * (keyed by their SHA-256, never stored in clear) so a pull does not pay bcrypt per request.
 * Health endpoints are always open; /metrics follows auth.protectMetrics.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import { OciError } from '../protocol/errors.js';
import type { Endpoint } from '../protocol/paths.js';
import type { Req } from './respond.js';

export interface AccessOptions {
  htpasswd: string;
  anonymousPull: boolean;
  protectMetrics: boolean;
}

/** A fixed bcrypt hash (cost 10) compared against for unknown users, so they cost as much as known ones. */
const DUMMY_HASH = '$2b$10$CwTycUXWue0Thq9StjUM0uJ8eYzQKvKDgyM8HuXQbq3qN7KrZjK1e';

export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const c = t.indexOf(':');
    const hash = t.slice(c + 1);
    if (c <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) throw new Error(`${file}:${i + 1}: not a bcrypt htpasswd entry (use htpasswd -B)`);
    users.set(t.slice(0, c), hash);
  });
  return users;
}

export class Access {
  private readonly users: Map<string, string>;
  private readonly verified = new LRUCache<string, true>({ max: 1000, ttl: 60_000 });
  /** Recently refused credentials: answered without another bcrypt run (a flood of bad logins costs no CPU). */
  private readonly refused = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });
  /** bcrypt runs on the main thread: at most this many at once, the rest wait. */
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly opts: AccessOptions) {
    this.users = parseHtpasswd(readFileSync(opts.htpasswd, 'utf8'), opts.htpasswd);
  }

  private challenge(message: string): OciError {
    return new OciError('UNAUTHORIZED', message, undefined, { headers: { 'www-authenticate': 'Basic realm="regcache"' } });
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= 2) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }

  /** Resolves to an error to send, or undefined to let the request through. */
  async authorize(req: Req, ep: Endpoint): Promise<OciError | undefined> {
    if (ep.kind === 'healthz' || ep.kind === 'readyz') return undefined;
    if (ep.kind === 'metrics' && !this.opts.protectMetrics) return undefined;
    // Admin actions (the sync API) always need a user, whatever anonymousPull says.
    if (ep.kind !== 'metrics' && ep.kind !== 'api-sync' && this.opts.anonymousPull) return undefined;
    const header = req.headers.authorization;
    if (typeof header !== 'string' || !/^basic /i.test(header)) return this.challenge('authentication required');
    const keyHex = createHash('sha256').update(header).digest('hex');
    if (this.verified.has(keyHex)) return undefined;
    if (this.refused.has(keyHex)) return this.challenge('invalid username or password');
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon === -1 ? decoded : decoded.slice(0, colon);
    const password = colon === -1 ? '' : decoded.slice(colon + 1);
    const hash = this.users.get(user);
    // bcrypt runs for unknown users too (against DUMMY_HASH): both answers take as long.
    const ok = await this.limited(() => bcrypt.compare(password, hash ?? DUMMY_HASH));
    if (!ok || hash === undefined) {
      this.refused.set(keyHex, true);
      return this.challenge('invalid username or password');
    }
    this.verified.set(keyHex, true);
    return undefined;
  }
}
