/** The one path from an error to a response, and small response helpers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { OciError } from '../protocol/errors.js';

export type Req = IncomingMessage | Http2ServerRequest;
export type Res = ServerResponse | Http2ServerResponse;

/** One request header as a string (absent, or repeated: undefined). */
export function requestHeader(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

export function toOciError(err: unknown): OciError {
  if (err instanceof OciError) return err;
  return new OciError('INTERNAL', 'internal error');
}

export function sendError(req: Req, res: Res, err: OciError): void {
  if (res.headersSent) {
    abort(res);
    return;
  }
  const body = err.body();
  res.statusCode = err.status;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('docker-distribution-api-version', 'registry/2.0');
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

export function sendJson(req: Req, res: Res, status: number, value: unknown, contentType = 'application/json'): void {
  const body = Buffer.from(JSON.stringify(value));
  sendBuffer(req, res, status, body, contentType);
}

export function sendBuffer(req: Req, res: Res, status: number, body: Buffer, contentType: string, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('content-type', contentType);
  res.setHeader('content-length', body.length);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** Whether an answer can still be sent on `res`: nothing has gone out and the client is still there. */
export function answerable(res: Res): boolean {
  if (res.headersSent || res.writableEnded) return false;
  if ('stream' in res && res.stream) return !res.stream.destroyed && !res.stream.closed;
  return !(res as ServerResponse).destroyed;
}

/**
 * Ends a response uncleanly, so the client cannot take it for complete: HTTP/2 resets the
 * stream; HTTP/1 closes the connection before the announced length or the last chunk. A
 * body delimited by the close itself (an HTTP/1.0 client, size unknown) would end as if
 * complete that way: that connection is reset instead (TCP RST, plain TCP only).
 */
export function abort(res: Res): void {
  if ('stream' in res && res.stream) {
    res.stream.close(0x2 /* INTERNAL_ERROR */);
    return;
  }
  const r = res as ServerResponse & { chunkedEncoding?: boolean };
  const socket = r.socket;
  if (socket && !socket.destroyed && r.headersSent && !r.hasHeader('content-length') && !r.chunkedEncoding) {
    try {
      socket.resetAndDestroy();
    } catch {
      // TLS (no TCP handle of its own): the close below, as for any other answer.
    }
  }
  r.destroy();
  socket?.destroy();
}
