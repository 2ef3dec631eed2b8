/**
 * A TCP forwarder in front of a plain-HTTP server (an upstream registry) that observes and breaks traffic:
 * it counts connections and bytes, records every HTTP/1.1 request passing client -> target (keep-alive and
 * pipelining aware: both directions are framed by http-stream.ts, not pattern-matched), and injects faults
 * into the target -> client direction.
 *
 * Faults apply to each response separately, counted in body bytes (chunked framing excluded; responses without
 * a body — HEAD, 204, 304 — are never touched):
 * - flipByteAfter N: byte N (0-based) of every body longer than N is inverted (xor 0xff).
 * - dieAfterBytes N: once a body longer than N has had N bytes forwarded, both sockets are destroyed.
 * - stallAfterHeaders: the header block of a response with a body is forwarded, then nothing more on that
 *   connection (the target is paused; the client waits until it gives up or close()).
 * - trickleBytesPerSec R: the whole target -> client stream is throttled to about R bytes/s.
 * setFault() replaces the faults for data seen from then on (also on open connections).
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { HttpStreamParser, type Segment } from './http-stream.js';

export { startConnectionCounter, type ConnectionCounter } from './connection-counter.js';

export interface ForwarderFaults {
  flipByteAfter?: number;
  stallAfterHeaders?: boolean;
  trickleBytesPerSec?: number;
  dieAfterBytes?: number;
}

export interface ForwardedRequest {
  method: string;
  path: string;
}

export interface Forwarder {
  /** `127.0.0.1:PORT` (like Registry.host). */
  host: string;
  hostname: string;
  port: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Client connections accepted. */
  readonly connections: number;
  /** Connections open right now. */
  readonly openConnections: number;
  /** Bytes received from the target (before faults). */
  readonly bytesFromTarget: number;
  /** Bytes written to clients (after faults). */
  readonly bytesToClient: number;
  /** Requests seen client -> target, in order. */
  readonly requests: ForwardedRequest[];
  /** Bytes inverted by flipByteAfter so far. */
  readonly flips: number;
  /** Connections destroyed by dieAfterBytes so far. */
  readonly kills: number;
  /** Responses stalled by stallAfterHeaders so far. */
  readonly stalls: number;
  /** Requests whose method equals `method` (any method when '*') and whose path matches (RegExp) or equals (string). */
  count(method: string, path?: RegExp | string): number;
  /** Zeroes every counter and forgets the requests (faults stay). */
  reset(): void;
  /** Replaces the faults ({} clears them). */
  setFault(faults: ForwarderFaults): void;
  readonly faults: ForwarderFaults;
  /** Destroys every open connection without closing the listener. */
  dropConnections(): void;
  close(): Promise<void>;
}

export interface ForwarderTarget {
  /** A hostname, or `hostname:port` (then `port` is ignored), so a Registry can be passed as is. */
  host: string;
  port: number;
}

type QueueItem = Buffer | 'die' | 'stall';
const HIGH_WATER = 1024 * 1024;

export async function startForwarder(target: ForwarderTarget, initialFaults: ForwarderFaults = {}): Promise<Forwarder> {
  const m = /^([^:]+):(\d+)$/.exec(target.host);
  const targetHost = m ? m[1]! : target.host;
  const targetPort = m ? Number(m[2]) : target.port;

  let faults: ForwarderFaults = { ...initialFaults };
  let connections = 0;
  let bytesFromTarget = 0;
  let bytesToClient = 0;
  let flips = 0;
  let kills = 0;
  let stalls = 0;
  let requests: ForwardedRequest[] = [];
  const open = new Set<Socket>();
  const clients = new Set<Socket>();

  const handle = (client: Socket): void => {
    connections++;
    const upstream = connect({ host: targetHost, port: targetPort });
    let upstreamEnded = false;
    open.add(client);
    open.add(upstream);
    clients.add(client);
    client.once('close', () => {
      open.delete(client);
      clients.delete(client);
    });
    upstream.once('close', () => open.delete(upstream));
    const destroyBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', destroyBoth);
    upstream.on('error', destroyBoth);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => {
      // Target gone: flush what is queued (done by pump on 'end'); if it never ended cleanly, drop the client too.
      if (!upstreamEnded) client.destroy();
    });

    // client -> target: record requests, forward untouched.
    const methods: string[] = [];
    const reqParser = new HttpStreamParser('request');
    client.on('data', (chunk: Buffer) => {
      for (const seg of reqParser.feed(chunk)) {
        if (seg.kind === 'head' && seg.head.method !== undefined && seg.head.path !== undefined) {
          methods.push(seg.head.method);
          requests.push({ method: seg.head.method, path: seg.head.path });
        }
      }
      if (upstream.destroyed) return;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    client.once('end', () => upstream.end());

    // target -> client: frame responses, apply faults, queue, pump (optionally throttled).
    const resParser = new HttpStreamParser('response', () => methods.shift());
    const queue: QueueItem[] = [];
    let queued = 0;
    let halted = false; // a die/stall is queued: ignore further target data
    let waitingDrain = false;
    let timer: NodeJS.Timeout | undefined;
    let tokens = 0;
    let lastRefill = Date.now();

    const enqueue = (item: QueueItem): void => {
      if (Buffer.isBuffer(item)) {
        if (item.length === 0) return;
        queued += item.length;
      }
      queue.push(item);
    };

    const apply = (seg: Segment): void => {
      if (halted) return;
      if (seg.kind === 'head') {
        enqueue(seg.bytes);
        if (seg.head.body === 0) return;
        if (faults.stallAfterHeaders) {
          enqueue('stall');
          halted = true;
        } else if (faults.dieAfterBytes === 0) {
          enqueue('die');
          halted = true;
        }
        return;
      }
      if (seg.kind === 'body') {
        let b = seg.bytes;
        const end = seg.offset + b.length;
        const flip = faults.flipByteAfter;
        if (flip !== undefined && flip >= seg.offset && flip < end) {
          b = Buffer.from(b);
          b[flip - seg.offset]! ^= 0xff;
          flips++;
        }
        const die = faults.dieAfterBytes;
        if (die !== undefined && die >= seg.offset && die < end) {
          enqueue(b.subarray(0, die - seg.offset));
          enqueue('die');
          halted = true;
          return;
        }
        enqueue(b);
        return;
      }
      if (seg.kind === 'end') return;
      enqueue(seg.bytes);
    };

    const pump = (): void => {
      if (timer !== undefined || waitingDrain) return;
      while (queue.length > 0) {
        const item = queue[0]!;
        if (item === 'die') {
          queue.length = 0;
          kills++;
          destroyBoth();
          return;
        }
        if (item === 'stall') {
          queue.length = 0;
          stalls++;
          upstream.pause();
          return;
        }
        let piece = item;
        const rate = faults.trickleBytesPerSec;
        if (rate !== undefined && rate > 0) {
          const now = Date.now();
          tokens = Math.min(tokens + ((now - lastRefill) * rate) / 1000, Math.max(rate / 10, 1));
          lastRefill = now;
          const n = Math.floor(tokens);
          if (n < 1) {
            timer = setTimeout(() => {
              timer = undefined;
              pump();
            }, 20);
            return;
          }
          piece = item.subarray(0, n);
          tokens -= piece.length;
        }
        if (piece.length === item.length) queue.shift();
        else queue[0] = item.subarray(piece.length);
        queued -= piece.length;
        bytesToClient += piece.length;
        if (!client.write(piece)) {
          waitingDrain = true;
          client.once('drain', () => {
            waitingDrain = false;
            pump();
          });
          upstream.pause();
          return;
        }
      }
      if (queue.length === 0 && !halted) {
        if (upstreamEnded) client.end();
        else if (queued < HIGH_WATER) upstream.resume();
      }
    };

    upstream.on('data', (chunk: Buffer) => {
      bytesFromTarget += chunk.length;
      if (halted) return;
      for (const seg of resParser.feed(chunk)) apply(seg);
      if (queued > HIGH_WATER) upstream.pause();
      pump();
    });
    upstream.once('end', () => {
      upstreamEnded = true;
      for (const seg of resParser.close()) apply(seg);
      pump();
    });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const dropConnections = (): void => {
    for (const s of open) s.destroy();
  };

  return {
    host: `127.0.0.1:${port}`,
    hostname: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    get openConnections() {
      return clients.size;
    },
    get bytesFromTarget() {
      return bytesFromTarget;
    },
    get bytesToClient() {
      return bytesToClient;
    },
    get requests() {
      return requests;
    },
    get flips() {
      return flips;
    },
    get kills() {
      return kills;
    },
    get stalls() {
      return stalls;
    },
    count(method, path) {
      if (path instanceof RegExp) path.lastIndex = 0;
      return requests.filter(
        (r) =>
          (method === '*' || r.method === method) &&
          (path === undefined || (typeof path === 'string' ? r.path === path : path.test(r.path))),
      ).length;
    },
    reset() {
      connections = 0;
      bytesFromTarget = 0;
      bytesToClient = 0;
      flips = 0;
      kills = 0;
      stalls = 0;
      requests = [];
    },
    setFault(f) {
      faults = { ...f };
    },
    get faults() {
      return { ...faults };
    },
    dropConnections,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        dropConnections();
      });
    },
  };
}
