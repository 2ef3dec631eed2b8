/**
 * An HTTP proxy in front of a registry that answers chosen requests itself with an error
 * status (e.g. 429 with Retry-After) before letting them through: what a throttling or
 * overloaded registry looks like to a client. Every other request is forwarded as is
 * (streamed both ways). Counts what it injected and what it forwarded.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface InjectRule {
  /** Which requests the rule applies to. */
  match: (method: string, path: string) => boolean;
  status: number;
  /** How many matching requests get the status before the rule stops (default 1). */
  times?: number;
  headers?: Record<string, string>;
}

export interface StatusInjector {
  host: string;
  url: string;
  /** Requests answered by an injected status. */
  readonly injected: Array<{ method: string; path: string; status: number }>;
  /** Requests forwarded to the target. */
  readonly forwarded: Array<{ method: string; path: string }>;
  close(): Promise<void>;
}

export async function startStatusInjector(target: { host: string }, rules: InjectRule[]): Promise<StatusInjector> {
  const [thost, tport] = target.host.split(':');
  const left = rules.map((r) => r.times ?? 1);
  const injected: StatusInjector['injected'] = [];
  const forwarded: StatusInjector['forwarded'] = [];
  const sockets = new Set<Socket>();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const i = rules.findIndex((r, k) => left[k]! > 0 && r.match(method, path));
    if (i !== -1) {
      left[i]!--;
      const rule = rules[i]!;
      injected.push({ method, path, status: rule.status });
      const body = JSON.stringify({ errors: [{ code: rule.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected by test', detail: null }] });
      // Drain the request body, then answer (a client that sends a body expects it read).
      req.resume();
      req.on('end', () => {
        res.writeHead(rule.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...rule.headers }).end(body);
      });
      return;
    }
    forwarded.push({ method, path });
    const up = httpRequest({ host: thost, port: Number(tport), method, path, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = createServer(handle);
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    injected,
    forwarded,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
