/**
 * A Docker-registry token server (the "Bearer realm" flow) for tests: issues RS256 JWTs that docker-registry 2.8
 * accepts, with the signing certificate in the JWT header's `x5c` and the same certificate as the registry's
 * `rootcertbundle`.
 *
 * Access policy: with `users` set, wrong Basic credentials get 401; no credentials get a pull-only token
 * (or 401 when `anonymous: 'deny'`); right credentials get the requested pull/push/delete actions.
 * Without `users`, every caller gets the requested actions.
 */
import { randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { runChecked } from './children.js';
import { tmpDir } from './tmp.js';

export interface TokenIssuerOptions {
  service: string;
  /** user -> password accepted as Basic credentials. */
  users?: Record<string, string>;
  /** JWT `iss`; the registry's `auth.token.issuer` must match (default `regcache-test-issuer`). */
  issuer?: string;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
  /** What a caller without credentials gets when `users` is set (default `pull`). */
  anonymous?: 'pull' | 'deny';
}

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequestRecord {
  method: string;
  authorization?: string;
  /** The authenticated user, if any. */
  user?: string;
  service?: string;
  scopes: string[];
  status: number;
  /** What the issued token grants (empty when refused). */
  access: AccessEntry[];
}

export interface TokenIssuer {
  /** `http://127.0.0.1:PORT/token` */
  realm: string;
  url: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts (`rootcertbundle`). */
  certPath: string;
  keyPath: string;
  /** Number of token requests served (any outcome). */
  readonly requests: number;
  /** Authorization header of the last token request, if it had one. */
  readonly lastAuthorization: string | undefined;
  /** Every token request, oldest first. */
  readonly log: readonly TokenRequestRecord[];
  /** Make every following token request fail with this status (undefined: back to normal). */
  setFailure(status: number | undefined): void;
  /** Mints a token directly (no HTTP), e.g. to push with `{ bearer }`. */
  mint(access: AccessEntry[], subject?: string): string;
  /** Zeroes requests, lastAuthorization and log. */
  reset(): void;
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Parses `type:name:actions` (name may itself contain ':'). */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first === -1 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

export async function startTokenIssuer(opts: TokenIssuerOptions): Promise<TokenIssuer> {
  const dir = tmpDir('regcache-token-');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await runChecked('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
    '-keyout', keyPath, '-out', certPath, '-days', '3', '-subj', '/CN=regcache-test-token-issuer',
  ]);
  const keyPem = readFileSync(keyPath, 'utf8');
  const certDerB64 = new X509Certificate(readFileSync(certPath)).raw.toString('base64');
  const issuer = opts.issuer ?? 'regcache-test-issuer';
  const expiresIn = opts.expiresIn ?? 300;

  let requests = 0;
  let lastAuthorization: string | undefined;
  let failure: number | undefined;
  const log: TokenRequestRecord[] = [];

  const mint = (access: AccessEntry[], subject = ''): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDerB64] };
    const claims = {
      iss: issuer, sub: subject, aud: opts.service,
      exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), keyPem))}`;
  };

  /** undefined user = anonymous; null = bad credentials. */
  const authenticate = (authorization: string | undefined, user?: string, password?: string): string | undefined | null => {
    if (user === undefined && authorization?.toLowerCase().startsWith('basic ')) {
      const dec = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      user = i === -1 ? dec : dec.slice(0, i);
      password = i === -1 ? '' : dec.slice(i + 1);
    }
    if (user === undefined) return undefined;
    if (!opts.users) return user;
    return Object.prototype.hasOwnProperty.call(opts.users, user) && opts.users[user] === password ? user : null;
  };

  const grant = (scopes: string[], authenticated: boolean): AccessEntry[] => {
    const allowed = authenticated ? ['pull', 'push', 'delete', '*'] : ['pull'];
    const out: AccessEntry[] = [];
    for (const s of scopes) {
      const e = parseScope(s);
      if (!e) continue;
      if (e.type === 'registry' && !authenticated) continue;
      const actions = e.actions.filter((a) => allowed.includes(a));
      if (actions.length > 0) out.push({ ...e, actions });
    }
    return out;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (status: number, body: unknown, rec?: Omit<TokenRequestRecord, 'status'>): void => {
      if (rec) log.push({ ...rec, status });
      const data = JSON.stringify(body);
      const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) };
      if (status === 401) headers['www-authenticate'] = 'Basic realm="regcache-test-token-issuer"';
      res.writeHead(status, headers).end(data);
    };
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      send(404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
      return;
    }
    requests++;
    const authorization = req.headers.authorization;
    lastAuthorization = authorization;
    let params = url.searchParams;
    let formUser: string | undefined;
    let formPassword: string | undefined;
    if (req.method === 'POST') {
      // OAuth2 password grant as containerd sends it (form-encoded body).
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (params.get('grant_type') === 'password') {
        formUser = params.get('username') ?? undefined;
        formPassword = params.get('password') ?? '';
      } else if (params.get('grant_type') !== null) {
        send(400, { error: 'unsupported_grant_type' }, { method: 'POST', authorization, service: params.get('service') ?? undefined, scopes: [], access: [] });
        return;
      }
    }
    const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const base = { method: req.method, authorization, service: params.get('service') ?? undefined, scopes };
    if (failure !== undefined) {
      send(failure, { errors: [{ code: 'UNAVAILABLE', message: 'failure injected by test' }] }, { ...base, access: [] });
      return;
    }
    if (base.service !== undefined && base.service !== opts.service) {
      send(400, { errors: [{ code: 'DENIED', message: `unknown service ${base.service}` }] }, { ...base, access: [] });
      return;
    }
    const user = authenticate(authorization, formUser, formPassword);
    if (user === null || (user === undefined && opts.users && opts.anonymous === 'deny')) {
      send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { ...base, access: [] });
      return;
    }
    const access = grant(scopes, user !== undefined || !opts.users);
    const token = mint(access, user ?? '');
    send(200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }, { ...base, user, access });
  };

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    realm: `${url}/token`,
    url,
    service: opts.service,
    issuer,
    certPath,
    keyPath,
    get requests() {
      return requests;
    },
    get lastAuthorization() {
      return lastAuthorization;
    },
    get log() {
      return log;
    },
    setFailure(status) {
      failure = status;
    },
    mint,
    reset() {
      requests = 0;
      lastAuthorization = undefined;
      log.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
