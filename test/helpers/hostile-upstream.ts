/**
 * A scripted plain-HTTP "registry" for tests of hostile or broken upstreams: each test sets the handler
 * (`handle(fn)`) and the server answers whatever it is told to — oversized or wrong manifests, redirect loops,
 * redirects to other schemes, foreign Link headers, 429/5xx with Retry-After. It records every request and,
 * for bodies sent with `stream`, how many bytes were accepted before the peer went away.
 *
 * `serveImages` answers like a minimal registry (manifests by tag and digest, GET and HEAD, blobs) so a test
 * can start from healthy content and then turn hostile.
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import type { Blob, Image, Index } from './images.js';

export interface HostileRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** Date.now() when the request arrived. */
  at: number;
}

/** What happened to a body sent with streamBody. */
export interface StreamOutcome {
  /** Bytes the socket accepted (write callbacks without error). */
  written: number;
  /** Bytes the test meant to send. */
  total: number;
  /** True when every byte was handed to the kernel and the response ended. */
  completed: boolean;
  /** True when the peer closed (or reset) the connection before the body was complete. */
  closedEarly: boolean;
}

export type HostileHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HostileUpstream {
  /** `http://127.0.0.1:PORT` (`https://` when started with `tls`) */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  hostname: string;
  port: number;
  /** TCP connections accepted. */
  readonly connections: number;
  /** Every request received, in order. */
  readonly requests: HostileRequest[];
  /** Outcomes of streamBody calls, in order. */
  readonly streams: StreamOutcome[];
  /** Requests whose method equals `method` ('*' = any) and whose path matches (RegExp) or equals (string). */
  count(method: string, path?: RegExp | string): number;
  /** Replaces the handler (the default answers 404 with an OCI body). */
  handle(fn: HostileHandler): void;
  /** streamBody, with the outcome also recorded in `streams`. */
  stream(res: ServerResponse, total: number, opts?: StreamOptions): Promise<StreamOutcome>;
  /** Forgets requests, streams and the connection count (the handler stays). */
  reset(): void;
  close(): Promise<void>;
}

/** An OCI-style error answer. */
export function sendStatus(res: ServerResponse, status: number, headers: OutgoingHttpHeaders = {}, code = 'UNKNOWN'): void {
  const body = JSON.stringify({ errors: [{ code, message: `hostile upstream says ${status}` }] });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export interface StreamOptions {
  status?: number;
  headers?: OutgoingHttpHeaders;
  /** Send Content-Length (default true); false = chunked. */
  contentLength?: boolean;
  chunk?: number;
  /** The byte value the body is made of (default a space). */
  fill?: number;
  /** Pause this long after each chunk (a slow, possibly endless body). */
  paceMs?: number;
}

/**
 * Writes `total` bytes of `fill` in `chunk`-sized pieces with backpressure, stopping as soon as the peer goes away.
 * With `contentLength` false the body is chunked. Resolves when done or cut (`record` gets the live outcome
 * object at once; `HostileUpstream.stream` uses it to fill `streams`).
 */
export function streamBody(res: ServerResponse, total: number, opts: StreamOptions = {}, record?: (o: StreamOutcome) => void): Promise<StreamOutcome> {
  const chunkSize = opts.chunk ?? 64 * 1024;
  const piece = Buffer.alloc(chunkSize, opts.fill ?? 0x20);
  const headers: OutgoingHttpHeaders = { ...opts.headers };
  if (opts.contentLength !== false) headers['content-length'] = total;
  res.writeHead(opts.status ?? 200, headers);
  const outcome: StreamOutcome = { written: 0, total, completed: false, closedEarly: false };
  record?.(outcome);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    res.once('close', () => {
      if (!outcome.completed) outcome.closedEarly = true;
      settle();
    });
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        if (res.destroyed || res.socket === null || res.socket.destroyed) {
          outcome.closedEarly = true;
          settle();
          return;
        }
        const n = Math.min(chunkSize, total - sent);
        sent += n;
        const ok = res.write(n === chunkSize ? piece : piece.subarray(0, n), (err) => {
          if (!err) outcome.written += n;
        });
        const next = opts.paceMs !== undefined ? (): void => void setTimeout(pump, opts.paceMs) : pump;
        if (!ok) {
          res.once('drain', next);
          return;
        }
        if (opts.paceMs !== undefined && sent < total) {
          next();
          return;
        }
      }
      res.end(() => {
        outcome.completed = outcome.written === total;
        settle();
      });
    };
    pump();
  });
}

interface Served {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

/**
 * A handler that answers like a registry for the given images and indexes: `/v2/<repo>/manifests/<tag|digest>`
 * (GET and HEAD, with Docker-Content-Digest) and `/v2/<repo>/blobs/<digest>`; anything else is 404.
 */
export function serveImages(entries: Array<{ repo: string; tag?: string; image: Image | Index; extraBlobs?: Blob[] }>): HostileHandler {
  const manifests = new Map<string, Served>();
  const blobs = new Map<string, Buffer>();
  const addImage = (repo: string, img: Image): void => {
    manifests.set(`${repo}@${img.digest}`, img);
    for (const b of [img.config, ...img.layers]) blobs.set(`${repo}@${b.digest}`, b.bytes);
  };
  for (const e of entries) {
    const m = e.image;
    manifests.set(`${e.repo}@${m.digest}`, m);
    if (e.tag !== undefined) manifests.set(`${e.repo}:${e.tag}`, m);
    if ('images' in m) for (const img of m.images) addImage(e.repo, img);
    else addImage(e.repo, m);
    for (const b of e.extraBlobs ?? []) blobs.set(`${e.repo}@${b.digest}`, b.bytes);
  }
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
      res.end('{}');
      return;
    }
    let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m) {
      const ref = m[2]!;
      const found = manifests.get(ref.includes(':') ? `${m[1]}@${ref}` : `${m[1]}:${ref}`);
      if (!found) return sendStatus(res, 404, {}, 'MANIFEST_UNKNOWN');
      res.writeHead(200, { 'content-type': found.mediaType, 'content-length': found.bytes.length, 'docker-content-digest': found.digest });
      res.end(req.method === 'HEAD' ? undefined : found.bytes);
      return;
    }
    m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path);
    if (m) {
      const bytes = blobs.get(`${m[1]}@${m[2]}`);
      if (!bytes) return sendStatus(res, 404, {}, 'BLOB_UNKNOWN');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length, 'docker-content-digest': m[2]! });
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return;
    }
    sendStatus(res, 404, {}, 'NAME_UNKNOWN');
  };
}

export interface HostileOptions {
  /** Serve HTTPS with this PEM certificate and key (files). */
  tls?: { cert: string; key: string };
}

export async function startHostileUpstream(opts: HostileOptions = {}): Promise<HostileUpstream> {
  let handler: HostileHandler = (_req, res) => sendStatus(res, 404, {}, 'NAME_UNKNOWN');
  let requests: HostileRequest[] = [];
  let streams: StreamOutcome[] = [];
  let connections = 0;
  const sockets = new Set<Socket>();

  const listener: RequestListener = (req, res) => {
    requests.push({ method: req.method ?? '-', path: req.url ?? '/', headers: req.headers, at: Date.now() });
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!res.headersSent) sendStatus(res, 500, {}, `handler threw: ${(err as Error).message}`);
        else res.destroy();
      });
  };
  const server = opts.tls
    ? createTlsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, listener)
    : createServer(listener);
  server.keepAliveTimeout = 5_000;
  // For TLS, count TCP connections (before the handshake), like the plain server does.
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    hostname: '127.0.0.1',
    port,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
    get streams() {
      return streams;
    },
    count(method, path) {
      if (path instanceof RegExp) path.lastIndex = 0;
      return requests.filter(
        (r) => (method === '*' || r.method === method) && (path === undefined || (typeof path === 'string' ? r.path === path : path.test(r.path))),
      ).length;
    },
    handle(fn) {
      handler = fn;
    },
    stream(res, total, opts) {
      return streamBody(res, total, opts, (o) => streams.push(o));
    },
    reset() {
      requests = [];
      streams = [];
      connections = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
