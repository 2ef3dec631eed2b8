/**
 * A scriptable in-process OCI registry for component tests: manifests, blobs, tags and
 * (optionally) the referrers API from memory, every request counted by method and kind,
 * and a hook to answer any request differently (a status, a delay, a broken body).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  method: string;
  path: string;
  kind: 'manifest' | 'blob' | 'tags' | 'referrers' | 'other';
  accept: string | undefined;
}

export type Script = (req: FakeRequest, res: ServerResponse) => boolean | Promise<boolean>;

/** A script serving 5 wrong bytes for one blob: its digest never matches (a corrupt upstream). */
export function corruptBlob(digest: string): Script {
  return (req, res) => {
    if (req.kind !== 'blob' || !req.path.endsWith(digest)) return false;
    res.writeHead(200, { 'content-length': '5' });
    res.end('xxxxx');
    return true;
  };
}

export interface FakeUpstream {
  url: string;
  requests: FakeRequest[];
  /** Requests of one method and kind. */
  count(method: string, kind: FakeRequest['kind']): number;
  putBlob(repo: string, bytes: Buffer): string;
  putManifest(repo: string, body: Buffer, mediaType: string, tag?: string): string;
  /** Removes a tag (its manifest stays, by digest). */
  deleteTag(repo: string, tag: string): void;
  /** Answers requests first: return true when it answered. */
  script: Script | undefined;
  referrersApi: boolean;
  close(): Promise<void>;
}

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { body: Buffer; mediaType: string; subject?: string }>();
  const tags = new Map<string, string>();
  const links = new Set<string>();
  const up: FakeUpstream = {
    url: '',
    requests: [],
    script: undefined,
    referrersApi: true,
    count: (method, kind) => up.requests.filter((r) => r.method === method && r.kind === kind).length,
    putBlob(repo, bytes) {
      const d = digestOf(bytes);
      blobs.set(d, bytes);
      links.add(`${repo}@${d}`);
      return d;
    },
    putManifest(repo, body, mediaType, tag) {
      const d = digestOf(body);
      const doc = JSON.parse(body.toString()) as { subject?: { digest?: string } };
      manifests.set(d, { body, mediaType, ...(doc.subject?.digest ? { subject: doc.subject.digest } : {}) });
      links.add(`${repo}@${d}`);
      if (tag) tags.set(`${repo}:${tag}`, d);
      return d;
    },
    deleteTag(repo, tag) {
      tags.delete(`${repo}:${tag}`);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = req.url ?? '/';
    const m = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\/([^?]+)(\?.*)?$/.exec(path);
    const kind = m ? (m[2] === 'manifests' ? 'manifest' : m[2] === 'blobs' ? 'blob' : m[2] === 'tags' ? 'tags' : 'referrers') : 'other';
    const r: FakeRequest = { method: req.method ?? 'GET', path, kind, accept: req.headers.accept };
    up.requests.push(r);
    if (up.script && (await up.script(r, res))) return;
    const head = req.method === 'HEAD';
    const send = (status: number, body: Buffer, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-length': String(body.length), ...headers });
      res.end(head ? undefined : body);
    };
    const notFound = (code: string): void => send(404, Buffer.from(JSON.stringify({ errors: [{ code, message: `${code.toLowerCase()}` }] })), { 'content-type': 'application/json' });
    if (path === '/v2/' || path === '/v2') return send(200, Buffer.from('{}'));
    if (!m) return notFound('NAME_UNKNOWN');
    const [, repo, , ref] = m as unknown as [string, string, string, string];
    if (kind === 'tags') {
      const q = new URLSearchParams(m[4]?.slice(1) ?? '');
      const last = q.get('last') ?? '';
      const n = q.has('n') ? Number(q.get('n')) : Infinity;
      const all = [...tags.keys()].filter((k) => k.startsWith(`${repo}:`)).map((k) => k.slice(repo.length + 1)).sort().filter((t) => t > last);
      const list = all.slice(0, n);
      const link: Record<string, string> = all.length > list.length ? { link: `</v2/${repo}/tags/list?n=${n}&last=${list[list.length - 1]}>; rel="next"` } : {};
      return send(200, Buffer.from(JSON.stringify({ name: repo, tags: list })), { 'content-type': 'application/json', ...link });
    }
    if (kind === 'referrers') {
      if (!up.referrersApi) return notFound('NAME_UNKNOWN');
      const list = [...manifests.entries()].filter(([d, v]) => v.subject === ref && links.has(`${repo}@${d}`))
        .map(([d, v]) => ({ mediaType: v.mediaType, digest: d, size: v.body.length }));
      return send(200, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: list })), { 'content-type': 'application/vnd.oci.image.index.v1+json' });
    }
    if (kind === 'manifest') {
      const d = ref.startsWith('sha256:') ? ref : tags.get(`${repo}:${ref}`);
      const man = d ? manifests.get(d) : undefined;
      if (!d || !man || !links.has(`${repo}@${d}`)) return notFound('MANIFEST_UNKNOWN');
      return send(200, man.body, { 'content-type': man.mediaType, 'docker-content-digest': d });
    }
    const blob = blobs.get(ref);
    if (!blob || !links.has(`${repo}@${ref}`)) return notFound('BLOB_UNKNOWN');
    return send(200, blob, { 'content-type': 'application/octet-stream', 'docker-content-digest': ref });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}
