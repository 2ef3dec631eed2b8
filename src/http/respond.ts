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

/** Ends a response uncleanly, so the client cannot take it for complete. */
export function abort(res: Res): void {
  if ('stream' in res && res.stream) {
    res.stream.close(0x2 /* INTERNAL_ERROR */);
    return;
  }
  const r = res as ServerResponse;
  r.destroy();
  r.socket?.destroy();
}
