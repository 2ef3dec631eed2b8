/**
 * Creates and binds the listeners: the main one (HTTP/1.1, or HTTPS with h2 and HTTP/1.1
 * fallback when tls is configured), one per upstream with a `port`, and an optional
 * separate metrics listener. Connection limits and timeouts against slow or abusive
 * clients are set here (documented in docs/limits.md): the same handshake, header and
 * keep-alive timeouts on every listener, one connection limit shared by all of them
 * (connection-pool.ts), and the HTTP/2 session guards (h2-guard.ts).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Config } from '../config/types.js';
import { ConnectionPool, connectionKey } from './connection-pool.js';
import { guardH2, H2_MAX_STREAMS } from './h2-guard.js';
import type { Req, Res } from './respond.js';

export type Handler = (req: Req, res: Res) => void;
export type AnyServer = http.Server | http2.Http2SecureServer;

export interface Listener {
  name: string;
  host: string;
  port: number;
  server: AnyServer;
  /** Upstream host bound to this port, for per-host listeners. */
  upstream?: string;
}

function clientErrorBody(status: number, code: string, message: string): string {
  const body = JSON.stringify({ errors: [{ code, message }] });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Malformed requests the HTTP parser rejects still get an OCI error body. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const code = err.code ?? '';
  let reply: string;
  if (code === 'HPE_HEADER_OVERFLOW') reply = clientErrorBody(431, 'REQUEST_INVALID', 'request headers too large');
  else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') reply = clientErrorBody(408, 'REQUEST_INVALID', 'request headers not received in time');
  else reply = clientErrorBody(400, 'REQUEST_INVALID', 'malformed HTTP request');
  socket.end(reply);
}

/** Open HTTP/2 sessions and TLS sockets per TLS server, so a shutdown past its grace period can cut them. */
const sessions = new WeakMap<AnyServer, Set<http2.ServerHttp2Session>>();
const tlsSockets = new WeakMap<AnyServer, Set<Socket>>();


/** At the limit with every connection busy: plain HTTP gets a 503 OCI body, TLS is just closed. */
function refuse(socket: Socket, tls: boolean): void {
  if (tls) {
    socket.destroy();
    return;
  }
  socket.end(clientErrorBody(503, 'UNAVAILABLE', 'too many connections'));
  setTimeout(() => socket.destroy(), 2_000).unref();
}

/** Admits every new connection through `pool` and tells it which connections are busy. */
function trackConnections(server: AnyServer, pool: ConnectionPool, tls: boolean): void {
  // Before the HTTP/TLS listeners see the socket, so a refused one goes no further.
  server.prependListener('connection', (socket: Socket) => {
    if (!pool.admit(socket)) refuse(socket, tls);
  });
  server.on('request', (req: Req, res: Res) => {
    const key = connectionKey(req.socket);
    pool.begin(key);
    res.once('close', () => pool.end(key));
  });
}

/**
 * A TCP connection that has not completed its TLS handshake within `ms` is closed, like a slow
 * header sender. tls's own handshakeTimeout starts only when the first bytes arrive, so a
 * connection that sends nothing was never closed (issue 10, item 2).
 */
function handshakeDeadline(server: http2.Http2SecureServer, ms: number): void {
  const pending = new Map<string, NodeJS.Timeout>();
  server.prependListener('connection', (socket: Socket) => {
    const key = connectionKey(socket);
    const t = setTimeout(() => {
      pending.delete(key);
      socket.destroy();
    }, ms);
    pending.set(key, t);
    socket.once('close', () => {
      clearTimeout(t);
      pending.delete(key);
    });
  });
  server.on('secureConnection', (socket: Socket) => {
    const key = connectionKey(socket);
    clearTimeout(pending.get(key));
    pending.delete(key);
  });
}

export function createServer(config: Config, handler: Handler, pool: ConnectionPool): AnyServer {
  const s = config.server;
  const timeouts = {
    headersTimeout: s.headersTimeout,
    requestTimeout: s.requestTimeout,
    keepAliveTimeout: s.keepAliveTimeout,
    // Node checks header/request timeouts on this period (default 30 s, too coarse for slowloris).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(s.headersTimeout / 2))),
  };
  let server: AnyServer;
  if (config.tls) {
    const h2 = http2.createSecureServer({
      cert: readFileSync(config.tls.cert),
      key: readFileSync(config.tls.key),
      allowHTTP1: true,
      maxSessionMemory: 64,
      handshakeTimeout: s.headersTimeout,
      settings: { maxConcurrentStreams: H2_MAX_STREAMS },
    }, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    // HTTP/1.1 over TLS (allowHTTP1) reads these properties, whose defaults (60 s headers,
    // checked every 30 s) let a TLS slowloris live for 90 s. They must be set before listen.
    Object.assign(h2, timeouts);
    guardH2(h2, s.streamStallTimeout);
    handshakeDeadline(h2, s.headersTimeout);
    server = h2;
    const open = new Set<http2.ServerHttp2Session>();
    sessions.set(server, open);
    server.on('session', (session: http2.ServerHttp2Session) => {
      open.add(session);
      session.once('close', () => open.delete(session));
    });
    // HTTP/1.1-over-TLS connections (allowHTTP1) are not sessions: track their sockets too.
    const sockets = new Set<Socket>();
    tlsSockets.set(server, sockets);
    server.on('secureConnection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  } else {
    server = http.createServer({ ...timeouts, maxHeaderSize: 16 * 1024 } as http.ServerOptions, handler as http.RequestListener);
  }
  trackConnections(server, pool, config.tls !== undefined);
  server.setTimeout(s.idleTimeout);
  server.on('clientError', onClientError);
  return server;
}

export function listen(l: Omit<Listener, 'port'> & { port: number }): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const what = l.upstream ? `upstream ${l.upstream} port ${l.port}` : `${l.name} ${l.host}:${l.port}`;
      reject(new Error(`cannot listen on ${what}: ${err.code ?? err.message}`));
    };
    l.server.once('error', onError);
    l.server.listen(l.port, l.host, () => {
      l.server.off('error', onError);
      const addr = l.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : l.port;
      resolve({ ...l, port });
    });
  });
}

/** Stops accepting; resolves when open connections are gone or `graceMs` has passed (then cuts them). */
export async function closeListener(l: Listener, graceMs: number): Promise<void> {
  const server = l.server as http.Server;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  if ('closeIdleConnections' in server) server.closeIdleConnections();
  // HTTP/2: ask clients to stop opening streams; in-flight streams may finish.
  for (const s of sessions.get(l.server) ?? []) s.close();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), graceMs); });
  const r = await Promise.race([closed, timeout]);
  clearTimeout(timer);
  if (r === 'timeout') {
    if ('closeAllConnections' in server) server.closeAllConnections();
    for (const s of sessions.get(l.server) ?? []) s.destroy();
    for (const s of tlsSockets.get(l.server) ?? []) s.destroy();
    await closed;
  }
}
