/**
 * The distribution push API from tests: blobs (POST upload + monolithic PUT ?digest=), manifests, whole images
 * and indexes. Auth: Basic credentials work against htpasswd registries, and against token registries through the
 * Bearer challenge (the credentials go to the token realm); `{ bearer }` sends a ready token.
 */
import type { Blob, Image, Index } from './images.js';

export type RegistryAuth = { user: string; password: string } | { bearer: string };

const tokenCache = new Map<string, string>();

/** Forgets every cached Bearer token (e.g. after restarting a token issuer with a new key). */
export function clearTokenCache(): void {
  tokenCache.clear();
}

/** A fetch body from a Buffer (a copy backed by a plain ArrayBuffer, which is what BodyInit's type wants). */
function toBody(b: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(b);
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  if (!/^bearer\s/i.test(header)) return undefined;
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) out[m[1]!.toLowerCase()] = m[2]!;
  return out;
}

async function fetchToken(challenge: Record<string, string>, auth: RegistryAuth | undefined, fallbackScope: string): Promise<string> {
  const realm = challenge.realm;
  if (!realm) throw new Error('Bearer challenge without realm');
  const u = new URL(realm);
  if (challenge.service) u.searchParams.set('service', challenge.service);
  u.searchParams.set('scope', challenge.scope ?? fallbackScope);
  const headers: Record<string, string> = {};
  if (auth && 'user' in auth) headers.authorization = basic(auth.user, auth.password);
  const res = await fetch(u, { headers });
  const text = await res.text();
  if (!res.ok) throw new Error(`token request ${u} failed: ${res.status} ${text}`);
  const j = JSON.parse(text) as { token?: string; access_token?: string };
  const t = j.token ?? j.access_token;
  if (!t) throw new Error(`token response without token: ${text}`);
  return t;
}

/** fetch() against a registry with auth applied; on a Bearer challenge gets a token and retries once. */
export async function registryFetch(
  registryUrl: string,
  repo: string,
  url: string | URL,
  init: RequestInit,
  auth?: RegistryAuth,
): Promise<Response> {
  // Tokens are cached per registry, repository and identity, so an anonymous call never reuses a user's token.
  const key = `${registryUrl} ${repo} ${auth && 'user' in auth ? `user:${auth.user}` : 'anonymous'}`;
  const withAuth = (authorization: string | undefined): RequestInit => {
    const headers = new Headers(init.headers);
    if (authorization) headers.set('authorization', authorization);
    return { ...init, headers };
  };
  let authorization: string | undefined;
  if (auth && 'bearer' in auth) authorization = `Bearer ${auth.bearer}`;
  else if (tokenCache.has(key)) authorization = `Bearer ${tokenCache.get(key)!}`;
  else if (auth) authorization = basic(auth.user, auth.password);
  const res = await fetch(url, withAuth(authorization));
  if (res.status !== 401 || (auth && 'bearer' in auth)) return res;
  const challenge = parseBearerChallenge(res.headers.get('www-authenticate') ?? '');
  if (!challenge) return res;
  await res.arrayBuffer();
  const token = await fetchToken(challenge, auth, `repository:${repo}:pull,push`);
  tokenCache.set(key, token);
  return fetch(url, withAuth(`Bearer ${token}`));
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

/** Uploads a blob unless the repository already has it. */
export async function pushBlob(registryUrl: string, repo: string, blob: Blob, auth?: RegistryAuth): Promise<void> {
  const head = await registryFetch(registryUrl, repo, `${registryUrl}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' }, auth);
  if (head.status === 200) return;
  const start = await registryFetch(registryUrl, repo, `${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' }, auth);
  await expectStatus(start, [202], `POST upload ${repo}`);
  await start.arrayBuffer();
  const location = start.headers.get('location');
  if (!location) throw new Error(`POST upload ${repo}: no Location header`);
  const put = new URL(location, registryUrl);
  put.searchParams.set('digest', blob.digest);
  const res = await registryFetch(
    registryUrl,
    repo,
    put,
    { method: 'PUT', body: toBody(blob.bytes), headers: { 'content-type': 'application/octet-stream' } },
    auth,
  );
  await expectStatus(res, [201], `PUT blob ${blob.digest} to ${repo}`);
  await res.arrayBuffer();
}

/** PUTs manifest bytes under a tag or digest; returns the registry's Docker-Content-Digest. */
export async function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  manifest: { bytes: Buffer; mediaType: string; digest: string },
  auth?: RegistryAuth,
): Promise<string> {
  const res = await registryFetch(
    registryUrl,
    repo,
    `${registryUrl}/v2/${repo}/manifests/${reference}`,
    { method: 'PUT', body: toBody(manifest.bytes), headers: { 'content-type': manifest.mediaType } },
    auth,
  );
  await expectStatus(res, [201], `PUT manifest ${repo}:${reference}`);
  await res.arrayBuffer();
  const digest = res.headers.get('docker-content-digest') ?? manifest.digest;
  if (digest !== manifest.digest) throw new Error(`registry computed ${digest}, expected ${manifest.digest}`);
  return digest;
}

/** Pushes config, layers and manifest; the manifest goes under `tag`, or only by digest when tag is undefined. */
export async function pushImage(registryUrl: string, repo: string, tag: string | undefined, image: Image, auth?: RegistryAuth): Promise<string> {
  for (const b of [image.config, ...image.layers]) await pushBlob(registryUrl, repo, b, auth);
  return pushManifest(registryUrl, repo, tag ?? image.digest, image, auth);
}

/** Pushes every child image by digest, then the index/list under `tag` (or by digest). */
export async function pushIndex(registryUrl: string, repo: string, tag: string | undefined, index: Index, auth?: RegistryAuth): Promise<string> {
  for (const img of index.images) await pushImage(registryUrl, repo, undefined, img, auth);
  return pushManifest(registryUrl, repo, tag ?? index.digest, index, auth);
}

/** DELETE a manifest by digest (the registry has storage.delete enabled). Returns the HTTP status. */
export async function deleteManifest(registryUrl: string, repo: string, digest: string, auth?: RegistryAuth): Promise<number> {
  const res = await registryFetch(registryUrl, repo, `${registryUrl}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' }, auth);
  await res.arrayBuffer();
  return res.status;
}

export interface FetchedManifest {
  status: number;
  mediaType: string | null;
  /** Docker-Content-Digest header. */
  digest: string | null;
  bytes: Buffer;
}

const ACCEPT_ALL = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** GET (or HEAD) a manifest accepting every schema2/OCI type. */
export async function fetchManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  auth?: RegistryAuth,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<FetchedManifest> {
  const res = await registryFetch(registryUrl, repo, `${registryUrl}/v2/${repo}/manifests/${reference}`, { method, headers: { accept: ACCEPT_ALL } }, auth);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, mediaType: res.headers.get('content-type'), digest: res.headers.get('docker-content-digest'), bytes };
}
