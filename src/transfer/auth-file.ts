/**
 * Registry credentials from the usual auth file: `--registry-config FILE`, else
 * `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
 * Entries are `auths.<key>.auth` (base64 `user:password`) or `auths.<key>.username` and
 * `.password`; a key may be written `host`, `https://host/v1/` or `host/namespace`
 * (podman), and the longest key that matches `registry/repository` wins. The same
 * credentials serve Basic and token registries (they are sent to the token realm).
 * Credential helpers (`credsStore`, `credHelpers`) and `identitytoken` are not read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Credentials {
  username: string;
  password: string;
}

export class AuthFileError extends Error {
  override name = 'AuthFileError';
}

export interface AuthFile {
  /** The file read, or undefined when there was none (default location absent). */
  path: string | undefined;
  /** Normalised key (`host[/namespace]`) -> credentials. */
  entries: Map<string, Credentials>;
}

/** The file to read: explicit (must exist) or the default (may be absent). */
export function authFilePath(flag: string | undefined, env: NodeJS.ProcessEnv): { path: string; explicit: boolean } {
  if (flag !== undefined) return { path: flag, explicit: true };
  if (env.REGISTRY_AUTH_FILE) return { path: env.REGISTRY_AUTH_FILE, explicit: true };
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return { path: join(dir, 'config.json'), explicit: false };
}

/** `https://index.docker.io/v1/` -> `docker.io`; `quay.io/org` stays; scheme and `/v1/`, `/v2/` go. */
export function normaliseKey(key: string): string {
  let k = key.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  const slash = k.indexOf('/');
  let host = (slash === -1 ? k : k.slice(0, slash)).toLowerCase();
  const rest = slash === -1 ? '' : k.slice(slash);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = 'docker.io';
  return host + rest;
}

/** Parses the JSON text of an auth file. Never puts a secret in an error. */
export function parseAuthFile(text: string, path: string): AuthFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new AuthFileError(`${path}: not valid JSON`);
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  const entries = new Map<string, Credentials>();
  if (auths === undefined) return { path, entries };
  if (!auths || typeof auths !== 'object') throw new AuthFileError(`${path}: "auths" is not an object`);
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    const v = (value ?? {}) as { auth?: unknown; username?: unknown; password?: unknown };
    let creds: Credentials | undefined;
    if (typeof v.auth === 'string' && v.auth !== '') {
      const dec = Buffer.from(v.auth, 'base64').toString('utf8');
      const i = dec.indexOf(':');
      if (i <= 0) throw new AuthFileError(`${path}: auths.${key}.auth is not base64 of user:password`);
      creds = { username: dec.slice(0, i), password: dec.slice(i + 1) };
    } else if (typeof v.username === 'string' && typeof v.password === 'string') {
      creds = { username: v.username, password: v.password };
    }
    if (creds) entries.set(normaliseKey(key), creds);
  }
  return { path, entries };
}

export function readAuthFile(flag: string | undefined, env: NodeJS.ProcessEnv): AuthFile {
  const { path, explicit } = authFilePath(flag, env);
  if (!existsSync(path)) {
    if (explicit) throw new AuthFileError(`${path}: no such file`);
    return { path: undefined, entries: new Map() };
  }
  return parseAuthFile(readFileSync(path, 'utf8'), path);
}

/** Credentials for `registry/repo`: the longest matching key (`host/ns` before `host`). */
export function credentialsFor(file: AuthFile, registry: string, repo = ''): Credentials | undefined {
  const full = repo ? `${registry}/${repo}` : registry;
  let best: { len: number; creds: Credentials } | undefined;
  for (const [key, creds] of file.entries) {
    if (full === key || full.startsWith(`${key}/`)) {
      if (!best || key.length > best.len) best = { len: key.length, creds };
    }
  }
  return best?.creds;
}
