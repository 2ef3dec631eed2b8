/**
 * Access control (config `auth`): HTTP Basic against an htpasswd file of bcrypt entries
 * (`htpasswd -B`), and per-user rules (`auth.rules`: users or `anonymous` x repository
 * patterns x actions). Unknown users are checked against a dummy hash so the answer takes as
 * long as for a known one; verified credentials are remembered for a minute (keyed by their
 * SHA-256, never stored in clear) so a pull does not pay bcrypt per request.
 *
 * Who may do what (docs/hosted.md#permissions):
 *  - pull: every logged-in user; anonymous callers with `anonymousPull` (or a rule);
 *  - push and delete (hosted repositories only): exactly the users a rule names, `anonymous`
 *    included only when a rule says so; without `auth` nobody may write;
 *  - a caller without credentials who needs them gets 401 with `WWW-Authenticate: Basic`
 *    (so docker, podman, skopeo and containerd log in); a known user without the right gets
 *    403 DENIED.
 * Health endpoints are always open; /metrics follows auth.protectMetrics.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { AccessAction, AccessRule } from '../config/types.js';
import { isAdminEndpoint, PUBLIC_STATUS_KINDS } from '../protocol/admin-paths.js';
import { OciError } from '../protocol/errors.js';
import { GlobSet } from '../protocol/glob.js';
import type { Endpoint } from '../protocol/paths.js';
import type { Req } from './respond.js';
import type { Method } from './route.js';

export interface AccessOptions {
  /** Absent: no users (no `auth` section): anonymous pulls, nobody writes. */
  htpasswd?: string | undefined;
  anonymousPull: boolean;
  protectMetrics: boolean;
  rules: AccessRule[];
  /** Whether callers without credentials may list the catalog. */
  anonymousCatalog: boolean;
  /** The admin status (and the page that shows it) needs no login. */
  publicStatus?: boolean;
}

/** The rule name of callers without credentials. */
export const ANONYMOUS = 'anonymous';

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

/** The action a request performs (pull for reads; uploads are pushes). */
export function actionOf(ep: Endpoint, method: Method): AccessAction {
  if (method === 'GET' || method === 'HEAD') return ep.kind === 'upload' ? 'push' : 'pull';
  if (method === 'DELETE') return ep.kind === 'upload' ? 'push' : 'delete';
  return 'push';
}

/** Who the caller is: a verified user, anonymous (no credentials), or refused credentials. */
export type Identity = { user: string } | { user: undefined } | { refused: OciError };

export class Access {
  private readonly users: Map<string, string>;
  private readonly grants: Array<{ users: Set<string>; repos: GlobSet; actions: Set<AccessAction> }>;
  private readonly verified = new LRUCache<string, string>({ max: 1000, ttl: 60_000 });
  /** Recently refused credentials: answered without another bcrypt run (a flood of bad logins costs no CPU). */
  private readonly refused = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });
  /** bcrypt runs on the main thread: at most this many at once, the rest wait. */
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly opts: AccessOptions) {
    this.users = opts.htpasswd === undefined ? new Map() : parseHtpasswd(readFileSync(opts.htpasswd, 'utf8'), opts.htpasswd);
    this.grants = opts.rules.map((r) => ({
      users: new Set(r.users), repos: new GlobSet(r.repositories.map((p) => [p, true] as [string, true])), actions: new Set(r.actions),
    }));
  }

  /** Whether logging in can help at all (an empty htpasswd file: only anonymous rules apply). */
  private get hasUsers(): boolean {
    return this.users.size > 0;
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

  /** Verifies the caller's Basic credentials, if any. */
  async identify(req: Req): Promise<Identity> {
    const header = req.headers.authorization;
    // No users (no `auth`, or an empty htpasswd): credentials name nobody, so they change nothing.
    if (typeof header !== 'string' || !/^basic /i.test(header) || !this.hasUsers) return { user: undefined };
    const keyHex = createHash('sha256').update(header).digest('hex');
    const known = this.verified.get(keyHex);
    if (known !== undefined) return { user: known };
    if (this.refused.has(keyHex)) return { refused: this.challenge('invalid username or password') };
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon === -1 ? decoded : decoded.slice(0, colon);
    const password = colon === -1 ? '' : decoded.slice(colon + 1);
    // containers/image answers a Basic challenge without credentials with an empty pair: anonymous.
    if (user === '' && password === '') return { user: undefined };
    const hash = this.users.get(user);
    // bcrypt runs for unknown users too (against DUMMY_HASH): both answers take as long.
    const ok = await this.limited(() => bcrypt.compare(password, hash ?? DUMMY_HASH));
    if (!ok || hash === undefined) {
      this.refused.set(keyHex, true);
      return { refused: this.challenge('invalid username or password') };
    }
    this.verified.set(keyHex, user);
    return { user };
  }

  /** Whether a rule grants `action` on repository `name` to `user` (undefined: anonymous). */
  granted(user: string | undefined, action: AccessAction, name: string): boolean {
    const who = user ?? ANONYMOUS;
    return this.grants.some((g) => g.users.has(who) && g.actions.has(action) && g.repos.matches(name));
  }

  /**
   * The admin API and page (and the sync API): open without users (no `auth`); otherwise a
   * login always (anonymousPull opens pulls only), except the status and the page with
   * `publicStatus`. A rule with the `admin` action names who is an admin; while no rule
   * names one, every logged-in user is.
   */
  private authorizeAdmin(user: string | undefined, kind: string): OciError | undefined {
    if (!this.hasUsers) return undefined;
    if (this.opts.publicStatus && PUBLIC_STATUS_KINDS.has(kind)) return undefined;
    if (user === undefined) return this.challenge('authentication required for the admin API');
    const admins = this.grants.filter((g) => g.actions.has('admin'));
    if (admins.length === 0 || admins.some((g) => g.users.has(user))) return undefined;
    return new OciError('DENIED', `${user} may not use the admin API (auth.rules grants admin to others)`);
  }

  /** Whether `user` may pull repository `name`. */
  mayPull(user: string | undefined, name: string): boolean {
    if (user !== undefined || this.opts.anonymousPull || !this.hasUsers) return true;
    return this.granted(undefined, 'pull', name);
  }

  /** The answer for a caller who lacks a right: log in (401) when anonymous and logging in could help, else 403. */
  private refuse(user: string | undefined, what: string): OciError {
    if (user === undefined && this.hasUsers) return this.challenge(`authentication required to ${what}`);
    const hint = this.hasUsers ? '' : ' (auth.rules would allow it)';
    return new OciError('DENIED', `${user ?? ANONYMOUS} may not ${what}${hint}`);
  }

  /**
   * Resolves to an error to send, or undefined to let the request through. `place` gives the
   * full repository name (undefined when the endpoint has none or it does not resolve) and
   * whether writes to it are possible at all (else the route answers 405); it is asked only
   * when a rule needs the name.
   */
  async authorize(req: Req, ep: Endpoint, method: Method, place: () => { name: string; hosted: boolean } | undefined): Promise<OciError | undefined> {
    if (ep.kind === 'healthz' || ep.kind === 'readyz') return undefined;
    const id = await this.identify(req);
    if ('refused' in id) return id.refused;
    const user = id.user;
    if (ep.kind === 'metrics') return this.opts.protectMetrics && user === undefined ? this.challenge('authentication required') : undefined;
    if (isAdminEndpoint(ep)) return this.authorizeAdmin(user, ep.kind);
    if (ep.kind === 'catalog') {
      if (user === undefined && !this.opts.anonymousCatalog) return this.refuse(user, 'list the catalog');
      return undefined;
    }
    if (ep.kind === 'base') {
      // The API check (`docker login`, and the ping of containers/image clients, which send
      // credentials only after a challenge here): with users and write rules, anonymous callers
      // are challenged, as distribution does; pulls without credentials still work after it.
      if (user !== undefined || !this.hasUsers || (this.opts.anonymousPull && this.grants.length === 0)) return undefined;
      return this.challenge('authentication required');
    }
    const action = actionOf(ep, method);
    if (action === 'pull') {
      if (user !== undefined || this.opts.anonymousPull || !this.hasUsers) return undefined;
      const p = place();
      if (p && this.mayPull(user, p.name)) return undefined;
      return this.refuse(user, `pull ${p?.name ?? 'this repository'}`);
    }
    // Writes to a repository that cannot take them: the route answers 405 naming the config key.
    const p = place();
    if (!p || !p.hosted) return undefined;
    if (this.granted(user, action, p.name)) return undefined;
    return this.refuse(user, `${action} ${p.name}`);
  }
}
