/**
 * HTTP/1.1 response grammar (RFC 9112), pure: the response head (status line and header
 * fields), how the body is framed, and a chunked transfer-coding decoder. Used by the
 * upstream blob reader (upstream/socket-get.ts), which reads sockets into one reused buffer
 * and so cannot hand them to undici's parser.
 *
 * Strict where leniency would let a byte of the framing pass for a byte of the blob: a bad
 * status line, a field line without a colon, a Content-Length that is not one decimal
 * number (or two that differ), Transfer-Encoding other than a final `chunked`, a chunk size
 * that is not hex or overflows, a chunk not followed by CRLF: each is an error, never a guess.
 */
import type { IncomingHttpHeaders } from 'node:http';

export class HttpProtocolError extends Error {
  override name = 'HttpProtocolError';
}

export interface ResponseHead {
  status: number;
  /** Field names in lower case; repeated fields joined with ", " (set-cookie: an array). */
  headers: IncomingHttpHeaders;
  /** Bytes of the head, including the empty line that ends it. */
  length: number;
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The head at the start of `buf` (up to `end`), or undefined when its end has not arrived.
 * A 1xx interim answer is returned like any other: the caller skips it (RFC 9112 15.2).
 */
export function parseResponseHead(buf: Buffer, end = buf.length): ResponseHead | undefined {
  const stop = buf.indexOf('\r\n\r\n', 0, 'latin1');
  if (stop < 0 || stop + 4 > end) return undefined;
  const lines = buf.toString('latin1', 0, stop).split('\r\n');
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) throw new HttpProtocolError(`invalid status line ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  const status = Number(m[2]);
  const headers: IncomingHttpHeaders = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpProtocolError('invalid header field line');
    const name = line.slice(0, colon);
    if (!FIELD_NAME.test(name)) throw new HttpProtocolError('invalid header field name');
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'set-cookie') {
      const prev = headers['set-cookie'];
      headers['set-cookie'] = prev ? [...prev, value] : [value];
      continue;
    }
    const prev = headers[key] as string | undefined;
    headers[key] = prev === undefined ? value : `${prev}, ${value}`;
  }
  if (m[1] === '0' && headers.connection === undefined) headers.connection = 'close';
  return { status, headers, length: stop + 4 };
}

export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** Ends when the server closes the connection (no length, not chunked). */
  | { kind: 'close' };

/** How the body of an answer to `method` is delimited (RFC 9112 section 6.3). */
export function bodyFraming(method: string, head: ResponseHead): BodyFraming {
  if (method === 'HEAD' || head.status === 204 || head.status === 304) return { kind: 'none' };
  const te = head.headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = String(te).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (codings.length !== 1 || codings[0] !== 'chunked') throw new HttpProtocolError(`unsupported transfer-encoding ${JSON.stringify(String(te).slice(0, 40))}`);
    return { kind: 'chunked' };
  }
  const cl = head.headers['content-length'];
  if (cl !== undefined) {
    const values = new Set(String(cl).split(',').map((s) => s.trim()));
    const [only] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) throw new HttpProtocolError('invalid content-length');
    return { kind: 'length', length: Number(only) };
  }
  return { kind: 'close' };
}

/** Whether the connection may carry another request after this answer's body. */
export function keepsAlive(head: ResponseHead, framing: BodyFraming): boolean {
  if (framing.kind === 'close') return false;
  // Both framings sent: chunked wins, and the connection is closed after (RFC 9112 6.3).
  if (head.headers['transfer-encoding'] !== undefined && head.headers['content-length'] !== undefined) return false;
  const conn = String(head.headers.connection ?? '').toLowerCase();
  return !conn.split(',').some((t) => t.trim() === 'close');
}

const enum ChunkState { Size, SizeExt, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, Done }

/** Longest chunk-size line and trailer line accepted (bytes). */
const MAX_LINE = 4096;
/** A chunk size up to 2^52: beyond, the number would not be exact. */
const MAX_SIZE_DIGITS = 13;

/**
 * Decodes a chunked body pushed in pieces. `onData(buf, start, end)` gets the payload
 * bytes (a view of the pushed buffer, valid during the call only). push() returns the
 * offset in the pushed piece where the body ended (trailers included), or -1 if more is
 * needed. Throws HttpProtocolError on malformed framing.
 */
export class ChunkedDecoder {
  private state = ChunkState.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  private lineLength = 0;

  constructor(private readonly onData: (buf: Buffer, start: number, end: number) => void) {}

  get done(): boolean {
    return this.state === ChunkState.Done;
  }

  push(buf: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case ChunkState.Size: {
          const c = buf[i]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) throw new HttpProtocolError('chunk size too large');
            this.size = this.size * 16 + v;
            i++;
          } else if (this.digits === 0) {
            throw new HttpProtocolError('invalid chunk size');
          } else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) {
            this.state = ChunkState.SizeExt;
            this.lineLength = 0;
          } else if (c === 0x0d) {
            this.state = ChunkState.SizeLf;
            i++;
          } else {
            throw new HttpProtocolError('invalid chunk size');
          }
          break;
        }
        case ChunkState.SizeExt: {
          const c = buf[i++]!;
          if (c === 0x0d) this.state = ChunkState.SizeLf;
          else if (++this.lineLength > MAX_LINE) throw new HttpProtocolError('chunk extension too long');
          break;
        }
        case ChunkState.SizeLf: {
          if (buf[i++] !== 0x0a) throw new HttpProtocolError('chunk size line not ended by CRLF');
          this.digits = 0;
          if (this.size === 0) {
            this.state = ChunkState.Trailer;
            this.lineLength = 0;
          } else {
            this.remaining = this.size;
            this.state = ChunkState.Data;
          }
          this.size = 0;
          break;
        }
        case ChunkState.Data: {
          const n = Math.min(this.remaining, end - i);
          this.onData(buf, i, i + n);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = ChunkState.DataCr;
          break;
        }
        case ChunkState.DataCr:
          if (buf[i++] !== 0x0d) throw new HttpProtocolError('chunk data not followed by CRLF');
          this.state = ChunkState.DataLf;
          break;
        case ChunkState.DataLf:
          if (buf[i++] !== 0x0a) throw new HttpProtocolError('chunk data not followed by CRLF');
          this.state = ChunkState.Size;
          break;
        case ChunkState.Trailer: {
          // A trailer section: field lines, then an empty line. Fields are ignored.
          const c = buf[i++]!;
          if (c === 0x0d) this.state = ChunkState.TrailerLf;
          else if (++this.lineLength > MAX_LINE) throw new HttpProtocolError('trailer line too long');
          break;
        }
        case ChunkState.TrailerLf: {
          if (buf[i++] !== 0x0a) throw new HttpProtocolError('trailer line not ended by CRLF');
          if (this.lineLength === 0) {
            this.state = ChunkState.Done;
            return i;
          }
          this.lineLength = 0;
          this.state = ChunkState.Trailer;
          break;
        }
        case ChunkState.Done:
          return i;
      }
    }
    return this.state === ChunkState.Done ? i : -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** The request head of a GET with these header fields (values must not hold CR or LF). */
export function getRequestHead(path: string, host: string, headers: Record<string, string>): string {
  if (/[\r\n\s]/.test(path) || /[\r\n]/.test(host)) throw new HttpProtocolError('invalid request target');
  let out = `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    // No control characters but tab in a value (RFC 9110 5.5): CR or LF would split the head.
    if (!FIELD_NAME.test(k) || /[\x00-\x08\x0a-\x1f\x7f]/.test(v)) throw new HttpProtocolError(`invalid request header ${JSON.stringify(k)}`);
    if (k.toLowerCase() === 'host') continue;
    out += `${k}: ${v}\r\n`;
  }
  return `${out}\r\n`;
}
