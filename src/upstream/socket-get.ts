/**
 * Blob GETs to an upstream (or its CDN) over HTTP/1.1 on sockets whose reads all land in
 * one reused 64 KiB buffer (net/tls `onread`), with a keep-alive pool per origin.
 *
 * Why not undici, as for every other upstream request: undici (like node:http) reads each
 * socket chunk into a new ArrayBuffer, and copies it again into its parser's WebAssembly
 * memory. For a blob that is ~16,000 short-lived 64 KiB buffers per GB, which V8 counts
 * against the old generation until a scavenge frees them; in about half of the processes
 * that set off a mark-compact every ~100 ms of a cold pull (docs/cache.md, "Reading
 * upstream blobs"). Here the fill copies each read once into its own reused slabs.
 *
 * What it does: connect (connect timeout; the caller's DNS lookup, which enforces the
 * address policy for redirect targets), send the GET, parse the head (headers timeout, at
 * most 64 KiB), frame the body by Content-Length, chunked coding or connection close
 * (protocol/http1.ts), time out a body that stalls while the consumer is reading (idle
 * timeout), honour an abort signal, and put the connection back in the pool only after a
 * complete body with nothing left over. A request on a reused connection that fails before
 * any byte of the answer is sent again once on a new connection (the server may have closed
 * it while idle). Errors carry the socket's code; no header value is ever in a message.
 */
import { isIP, connect as netConnect, type LookupFunction, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { bodyFraming, ChunkedDecoder, getRequestHead, HttpProtocolError, keepsAlive, parseResponseHead, type BodyFraming, type ResponseHead } from '../protocol/http1.js';
import { UpstreamError } from './errors.js';
import { SocketBody } from './socket-body.js';

export interface SocketGetOptions {
  timeouts: { connect: number; headers: number; idle: number };
  /** TLS: extra CAs (with the system roots) and whether to verify the peer. */
  tls: { ca?: string[]; rejectUnauthorized: boolean };
  /** Idle connections kept per origin, and for how long (ms). */
  maxIdlePerOrigin?: number;
  keepAliveMs?: number;
  /** Connections in use per origin at most (as undici's pools); more GETs wait their turn. */
  maxPerOrigin?: number;
}

export interface SocketGetRequest {
  url: URL;
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** DNS lookup for the connect (the address policy for origins other than the configured one). */
  lookup?: LookupFunction;
}

export interface SocketGetAnswer {
  status: number;
  headers: ResponseHead['headers'];
  body: SocketBody;
}

const MAX_HEAD = 64 * 1024;
const READ_BUFFER = 64 * 1024;

/** One connection: one exchange at a time; its reads are dispatched to the exchange. */
class Connection {
  exchange: Exchange | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** Answers completed on it: a failure before any byte on a reused one is retried. */
  uses = 0;
  dead = false;

  constructor(readonly socket: Socket, readonly origin: string) {}
}

export class SocketGetPool {
  /** One buffer for every socket: onread callbacks run one at a time, and nothing keeps a view past one. */
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER);
  private readonly idle = new Map<string, Connection[]>();
  private readonly active = new Set<Connection>();
  /** Sockets still connecting (destroy() cuts them too). */
  private readonly connecting = new Set<Socket>();
  /** Per origin: exchanges holding a slot, and GETs waiting for one. */
  private readonly slots = new Map<string, { busy: number; waiting: Array<() => void> }>();
  private closed = false;

  constructor(private readonly opts: SocketGetOptions) {}

  async get(req: SocketGetRequest): Promise<SocketGetAnswer> {
    if (this.closed) throw new UpstreamError('unreachable', 'client closed');
    // A request that cannot be written costs no connection.
    const head = getRequestHead(req.url.pathname + req.url.search, req.url.host, req.headers);
    const origin = req.url.origin;
    await this.acquire(origin, req.signal);
    let handedOver = false;
    const release = (): void => this.releaseSlot(origin);
    try {
      const reused = this.takeIdle(origin);
      if (reused) {
        try {
          const answer = await this.exchange(reused, req, head, release);
          handedOver = true;
          return answer;
        } catch (err) {
          handedOver = true; // the exchange released the slot
          if (!(err instanceof NothingReceived) || req.signal?.aborted || this.closed) throw unwrap(err);
          // The server closed the idle connection as the request went out: once more, on a new one.
          await this.acquire(origin, req.signal);
          handedOver = false;
        }
      }
      const conn = await this.open(req);
      handedOver = true;
      return await this.exchange(conn, req, head, release);
    } catch (err) {
      if (!handedOver) release();
      throw unwrap(err);
    }
  }

  /**
   * Waits for a free slot for `origin` (at most maxPerOrigin exchanges at once), no longer
   * than the headers timeout: the slots are held for whole bodies, which may trickle for as
   * long as each read comes within the idle timeout, so the wait has a bound of its own.
   */
  private acquire(origin: string, signal: AbortSignal | undefined): Promise<void> {
    let slot = this.slots.get(origin);
    if (!slot) this.slots.set(origin, slot = { busy: 0, waiting: [] });
    const max = this.opts.maxPerOrigin ?? 64;
    if (slot.busy < max) {
      slot.busy++;
      return Promise.resolve();
    }
    const s = slot;
    const ms = this.opts.timeouts.headers;
    return new Promise<void>((resolve, reject) => {
      const leave = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        const i = s.waiting.indexOf(go);
        if (i >= 0) s.waiting.splice(i, 1);
      };
      const go = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        resolve(); // the slot is handed over: busy is unchanged
      };
      const abort = (): void => {
        leave();
        reject(abortError(signal));
      };
      const timer = ms > 0
        ? setTimeout(() => {
          leave();
          reject(new UpstreamError('timeout', `no connection to the upstream within ${ms} ms: ${max} transfers from it in progress`));
        }, ms)
        : undefined;
      if (signal?.aborted) return abort();
      signal?.addEventListener('abort', abort, { once: true });
      s.waiting.push(go);
    });
  }

  private releaseSlot(origin: string): void {
    const slot = this.slots.get(origin);
    if (!slot) return;
    const next = slot.waiting.shift();
    if (next) return next();
    slot.busy--;
    if (slot.busy === 0) this.slots.delete(origin);
  }

  /** Closes idle connections; busy ones close when their answer ends. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) this.kill(c);
    this.idle.clear();
  }

  /** Closes every connection at once, cutting answers in progress. */
  destroy(): void {
    this.close();
    for (const s of [...this.connecting]) s.destroy(new UpstreamError('unreachable', 'client closed'));
    for (const c of [...this.active]) {
      c.exchange?.fail(new UpstreamError('unreachable', 'client closed'));
      this.kill(c);
    }
  }

  private takeIdle(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    while (list && list.length > 0) {
      const c = list.pop()!;
      clearTimeout(c.idleTimer);
      if (!c.dead && !c.socket.destroyed) {
        c.socket.ref();
        return c;
      }
    }
    return undefined;
  }

  private open(req: SocketGetRequest): Promise<Connection> {
    const { url } = req;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const https = url.protocol === 'https:';
    const port = Number(url.port || (https ? 443 : 80));
    let conn: Connection | undefined;
    const onread = {
      buffer: this.readBuffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        if (!conn) return true;
        if (conn.exchange) conn.exchange.onRead(buf as Buffer, n);
        // Bytes on an idle connection: out of step with the server; never reuse it.
        else this.kill(conn);
        return true;
      },
    };
    const common = { host, port, onread, ...(req.lookup ? { lookup: req.lookup } : {}) };
    const socket = https
      ? tlsConnect({
        ...common,
        ...(isIP(host) ? {} : { servername: host }),
        ...(this.opts.tls.ca ? { ca: this.opts.tls.ca } : {}),
        rejectUnauthorized: this.opts.tls.rejectUnauthorized,
        ALPNProtocols: ['http/1.1'],
      })
      : netConnect(common);
    conn = new Connection(socket, url.origin);
    const c = conn;
    socket.setNoDelay(true);
    socket.on('error', (err) => this.onSocketEnd(c, err));
    socket.on('end', () => this.onSocketEnd(c, undefined));
    socket.on('close', () => this.onSocketEnd(c, undefined));
    this.connecting.add(socket);
    return new Promise<Connection>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', abort);
        socket.off('error', fail);
        this.connecting.delete(socket);
      };
      const timer = setTimeout(() => {
        settle();
        socket.destroy();
        reject(new UpstreamError('timeout', `connect timeout after ${this.opts.timeouts.connect} ms`));
      }, this.opts.timeouts.connect);
      const abort = (): void => {
        settle();
        socket.destroy();
        reject(abortError(req.signal));
      };
      const fail = (err: Error): void => {
        settle();
        reject(err);
      };
      socket.once('error', fail);
      if (req.signal?.aborted) return abort();
      req.signal?.addEventListener('abort', abort, { once: true });
      socket.once(https ? 'secureConnect' : 'connect', () => {
        settle();
        if (this.closed) {
          socket.destroy();
          reject(new UpstreamError('unreachable', 'client closed'));
          return;
        }
        resolve(c);
      });
    });
  }

  /** One GET on `conn`; `releaseSlot` runs once, when the answer is over (or failed). */
  private exchange(conn: Connection, req: SocketGetRequest, head: string, releaseSlot: () => void): Promise<SocketGetAnswer> {
    this.active.add(conn);
    const ex = new Exchange(conn, req, this.opts.timeouts, (reusable) => {
      this.release(conn, reusable);
      releaseSlot();
    });
    conn.exchange = ex;
    ex.start(head);
    return ex.answer;
  }

  private release(conn: Connection, reusable: boolean): void {
    conn.exchange = undefined;
    this.active.delete(conn);
    if (!reusable || this.closed || conn.dead || conn.socket.destroyed) {
      this.kill(conn);
      return;
    }
    conn.uses++;
    const list = this.idle.get(conn.origin) ?? [];
    if (list.length >= (this.opts.maxIdlePerOrigin ?? 16)) {
      this.kill(conn);
      return;
    }
    list.push(conn);
    this.idle.set(conn.origin, list);
    // An idle connection keeps no process alive (a `regcache copy` exits when it is done).
    conn.socket.unref();
    conn.socket.resume();
    conn.idleTimer = setTimeout(() => this.kill(conn), this.opts.keepAliveMs ?? 30_000);
    conn.idleTimer.unref();
  }

  private onSocketEnd(conn: Connection, err: Error | undefined): void {
    if (conn.dead && !conn.exchange) return;
    conn.dead = true;
    clearTimeout(conn.idleTimer);
    const ex = conn.exchange;
    if (ex) ex.onSocketEnd(err);
    else this.kill(conn);
  }

  private kill(conn: Connection): void {
    conn.dead = true;
    clearTimeout(conn.idleTimer);
    this.active.delete(conn);
    const list = this.idle.get(conn.origin);
    if (list) {
      const i = list.indexOf(conn);
      if (i >= 0) list.splice(i, 1);
    }
    conn.socket.destroy();
  }
}

/** A failure before any byte of the answer: on a reused connection it is retried. */
class NothingReceived extends Error {
  constructor(readonly inner: Error) {
    super(inner.message);
  }
}

function unwrap(err: unknown): unknown {
  return err instanceof NothingReceived ? err.inner : err;
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const e = new Error('request aborted');
  e.name = 'AbortError';
  return e;
}

/** One request and its answer on a connection. */
class Exchange {
  readonly answer: Promise<SocketGetAnswer>;
  private resolveAnswer!: (a: SocketGetAnswer) => void;
  private rejectAnswer!: (e: unknown) => void;
  private head: Buffer | undefined;
  private received = 0;
  private framing: BodyFraming | undefined;
  private remaining = 0;
  private chunked: ChunkedDecoder | undefined;
  private body: SocketBody | undefined;
  private over = false;
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private headResult: ResponseHead | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly req: SocketGetRequest,
    private readonly timeouts: { headers: number; idle: number },
    private readonly done: (reusable: boolean) => void,
  ) {
    this.answer = new Promise((resolve, reject) => {
      this.resolveAnswer = resolve;
      this.rejectAnswer = reject;
    });
  }

  start(head: string): void {
    const { signal } = this.req;
    if (signal?.aborted) return this.fail(abortError(signal), false);
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.arm(this.timeouts.headers, () => new UpstreamError('timeout', `headers timeout: no answer headers within ${this.timeouts.headers} ms`));
    this.conn.socket.resume();
    this.conn.socket.write(head);
  }

  private readonly onAbort = (): void => this.fail(abortError(this.req.signal));

  private arm(ms: number, error: () => Error): void {
    clearTimeout(this.timer);
    if (ms <= 0) return;
    this.timer = setTimeout(() => this.fail(error()), ms);
  }

  onRead(buf: Buffer, n: number): void {
    if (this.over) return;
    this.received += n;
    try {
      if (!this.headResult) {
        this.head = this.head ? Buffer.concat([this.head, buf.subarray(0, n)]) : Buffer.from(buf.subarray(0, n));
        let parsed = parseResponseHead(this.head);
        // Interim answers (103 Early Hints from a CDN) are skipped, as RFC 9112 asks.
        while (parsed && parsed.status < 200) {
          if (parsed.status === 101) throw new HttpProtocolError('unexpected 101 Switching Protocols');
          this.head = this.head.subarray(parsed.length);
          parsed = parseResponseHead(this.head);
        }
        if (!parsed ? this.head.length > MAX_HEAD : parsed.length > MAX_HEAD) throw new HttpProtocolError(`answer head larger than ${MAX_HEAD} bytes`);
        if (!parsed) {
          if (this.head.length === 0) this.head = undefined;
          return;
        }
        const rest = this.head;
        this.head = undefined;
        this.startBody(parsed);
        const framing = this.framing!;
        if (framing.kind === 'none' || (framing.kind === 'length' && framing.length === 0)) this.finish(rest.length === parsed.length);
        else this.feed(rest, parsed.length, rest.length);
        return;
      }
      if (this.timer) this.timer.refresh();
      this.feed(buf, 0, n);
    } catch (err) {
      this.fail(err instanceof HttpProtocolError ? new UpstreamError('protocol', `invalid HTTP answer: ${err.message}`) : err as Error);
    }
  }

  private startBody(head: ResponseHead): void {
    this.framing = bodyFraming('GET', head);
    this.headResult = head;
    if (this.framing.kind === 'length') this.remaining = this.framing.length;
    const body = new SocketBody({
      pause: () => {
        // Once the answer is over the connection is someone else's (or idle): never pause it.
        if (this.over) return;
        this.paused = true;
        clearTimeout(this.timer);
        this.conn.socket.pause();
      },
      resume: () => {
        if (this.over) return;
        this.paused = false;
        this.armIdle();
        this.conn.socket.resume();
      },
      abort: () => this.fail(new Error('body closed by its reader'), false),
    });
    this.body = body;
    if (this.framing.kind === 'chunked') this.chunked = new ChunkedDecoder((b, s, e) => body.deliver(b, s, e));
    this.armIdle();
    this.req.signal?.removeEventListener('abort', this.onAbort);
    // An abort after the head cuts the body.
    this.req.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.resolveAnswer({ status: head.status, headers: head.headers, body });
  }

  private armIdle(): void {
    if (this.paused) return;
    this.arm(this.timeouts.idle, () => new UpstreamError('timeout', `idle timeout: the answer body stalled for ${this.timeouts.idle} ms`));
  }

  private feed(buf: Buffer, start: number, end: number): void {
    if (this.over || start >= end) return;
    const framing = this.framing!;
    if (framing.kind === 'length') {
      const n = Math.min(this.remaining, end - start);
      this.remaining -= n;
      this.body!.deliver(buf, start, start + n);
      if (this.remaining === 0) this.finish(start + n === end);
      return;
    }
    if (framing.kind === 'chunked') {
      const stop = this.chunked!.push(buf, start, end);
      if (stop >= 0) this.finish(stop === end);
      return;
    }
    if (framing.kind === 'close') {
      this.body!.deliver(buf, start, end);
      return;
    }
    // No body expected, bytes came: the connection is out of step.
    this.finish(false);
  }

  /** The answer is complete; the connection is reusable if the framing allows and nothing was left over. */
  private finish(clean: boolean): void {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    this.req.signal?.removeEventListener('abort', this.onAbort);
    const reusable = clean && keepsAlive(this.headResult!, this.framing!);
    this.done(reusable);
    this.body!.complete();
  }

  onSocketEnd(err: Error | undefined): void {
    if (this.over) return;
    if (this.framing?.kind === 'close' && !err) {
      this.finish(false);
      return;
    }
    const what = this.headResult ? 'connection closed before the end of the answer body' : 'connection closed before an answer';
    this.fail(err ?? Object.assign(new Error(what), { code: 'ECONNRESET' }));
  }

  /** Ends the exchange with an error: before the head the request rejects, after it the body errors. */
  fail(err: Error, fromSocket = true): void {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    this.req.signal?.removeEventListener('abort', this.onAbort);
    this.done(false);
    if (!this.headResult || !this.body) {
      const nothing = this.received === 0 && this.conn.uses > 0 && fromSocket && !(err instanceof UpstreamError);
      this.rejectAnswer(nothing ? new NothingReceived(err) : err);
      return;
    }
    if (fromSocket) this.body!.destroy(err);
  }
}
