/**
 * An incremental HTTP/1.1 message framer for one direction of a TCP connection. It splits the byte stream into
 * header blocks, body data (with its offset inside the message body) and framing bytes (chunk sizes, CRLFs,
 * trailers), without changing a byte. Used by the forwarder to count requests and to place faults in bodies.
 *
 * Responses are framed with the request methods seen on the same connection (HEAD responses have no body),
 * 1xx/204/304 have none, chunked and Content-Length bodies are followed, otherwise the body lasts until close.
 * Anything it cannot parse (an oversized or malformed head, a 101 upgrade) turns it into pass-through `raw`.
 */

export interface MessageHead {
  startLine: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Requests only. */
  method?: string;
  path?: string;
  /** Responses only. */
  status?: number;
  /** The request method this response answers (responses only, when known). */
  requestMethod?: string;
  /** Body framing: byte length (0 = no body), chunked, or until the connection closes. */
  body: number | 'chunked' | 'close';
}

export type Segment =
  | { kind: 'head'; bytes: Buffer; head: MessageHead }
  | { kind: 'body'; bytes: Buffer; offset: number; head: MessageHead }
  | { kind: 'framing'; bytes: Buffer }
  | { kind: 'end'; head: MessageHead }
  | { kind: 'raw'; bytes: Buffer };

const MAX_HEAD = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

type State =
  | { s: 'head'; buf: Buffer }
  | { s: 'length'; head: MessageHead; remaining: number; offset: number }
  | { s: 'close'; head: MessageHead; offset: number }
  | { s: 'chunk-size'; head: MessageHead; line: Buffer; offset: number }
  | { s: 'chunk-data'; head: MessageHead; remaining: number; offset: number }
  | { s: 'chunk-crlf'; head: MessageHead; remaining: number; offset: number }
  | { s: 'trailers'; head: MessageHead; buf: Buffer }
  | { s: 'raw' };

export class HttpStreamParser {
  private state: State = { s: 'head', buf: Buffer.alloc(0) };

  /**
   * @param role which direction this parses
   * @param nextRequestMethod for responses: takes the method of the oldest unanswered request on the connection
   */
  constructor(
    readonly role: 'request' | 'response',
    private readonly nextRequestMethod: () => string | undefined = () => undefined,
  ) {}

  /**
   * Splits a chunk into segments. Over a whole connection the segments' bytes concatenate to exactly the stream;
   * an incomplete header block is held back until its end arrives (or close() releases it as raw).
   */
  feed(chunk: Buffer): Segment[] {
    const out: Segment[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const st = this.state;
      switch (st.s) {
        case 'raw':
          out.push({ kind: 'raw', bytes: chunk.subarray(pos) });
          return out;
        case 'head': {
          const prevLen = st.buf.length;
          const buf = Buffer.concat([st.buf, chunk.subarray(pos)]);
          const end = buf.indexOf(CRLFCRLF, Math.max(0, prevLen - 3));
          if (end === -1) {
            if (buf.length > MAX_HEAD) {
              this.state = { s: 'raw' };
              out.push({ kind: 'raw', bytes: chunk.subarray(pos) });
              return out;
            }
            // Keep the partial head; the bytes are emitted with the head once complete.
            st.buf = buf;
            return out;
          }
          const headBytes = buf.subarray(0, end + 4);
          pos += headBytes.length - prevLen;
          const head = this.parseHead(headBytes.toString('latin1'));
          if (!head) {
            this.state = { s: 'raw' };
            out.push({ kind: 'raw', bytes: headBytes });
            continue;
          }
          out.push({ kind: 'head', bytes: headBytes, head });
          this.startBody(head, out);
          break;
        }
        case 'length':
        case 'chunk-data':
        case 'close': {
          const n = st.s === 'close' ? chunk.length - pos : Math.min(st.remaining, chunk.length - pos);
          out.push({ kind: 'body', bytes: chunk.subarray(pos, pos + n), offset: st.offset, head: st.head });
          pos += n;
          st.offset += n;
          if (st.s === 'length') {
            st.remaining -= n;
            if (st.remaining === 0) this.endMessage(st.head, out);
          } else if (st.s === 'chunk-data') {
            st.remaining -= n;
            if (st.remaining === 0) this.state = { s: 'chunk-crlf', head: st.head, remaining: 2, offset: st.offset };
          }
          break;
        }
        case 'chunk-crlf': {
          const n = Math.min(st.remaining, chunk.length - pos);
          out.push({ kind: 'framing', bytes: chunk.subarray(pos, pos + n) });
          pos += n;
          st.remaining -= n;
          if (st.remaining === 0) this.state = { s: 'chunk-size', head: st.head, line: Buffer.alloc(0), offset: st.offset };
          break;
        }
        case 'chunk-size': {
          const nl = chunk.indexOf(0x0a, pos);
          const take = nl === -1 ? chunk.length - pos : nl + 1 - pos;
          out.push({ kind: 'framing', bytes: chunk.subarray(pos, pos + take) });
          st.line = Buffer.concat([st.line, chunk.subarray(pos, pos + take)]);
          pos += take;
          if (nl === -1) {
            if (st.line.length > 1024) this.state = { s: 'raw' };
            break;
          }
          const size = parseInt(st.line.toString('latin1').split(';')[0]!.trim(), 16);
          if (Number.isNaN(size)) this.state = { s: 'raw' };
          else if (size === 0) this.state = { s: 'trailers', head: st.head, buf: Buffer.alloc(0) };
          else this.state = { s: 'chunk-data', head: st.head, remaining: size, offset: st.offset };
          break;
        }
        case 'trailers': {
          // Trailer section ends with an empty line; with no trailers that is the CRLF right after "0\r\n".
          const nl = chunk.indexOf(0x0a, pos);
          const take = nl === -1 ? chunk.length - pos : nl + 1 - pos;
          out.push({ kind: 'framing', bytes: chunk.subarray(pos, pos + take) });
          st.buf = Buffer.concat([st.buf, chunk.subarray(pos, pos + take)]);
          pos += take;
          if (nl === -1) break;
          const line = st.buf.toString('latin1');
          st.buf = Buffer.alloc(0);
          if (line === '\r\n' || line === '\n') this.endMessage(st.head, out);
          break;
        }
      }
    }
    return out;
  }

  /** Call when the connection closed: ends a body that lasts until close, releases a held partial head. */
  close(): Segment[] {
    const st = this.state;
    if (st.s === 'head' && st.buf.length > 0) {
      this.state = { s: 'head', buf: Buffer.alloc(0) };
      return [{ kind: 'raw', bytes: st.buf }];
    }
    if (st.s === 'close') {
      this.state = { s: 'head', buf: Buffer.alloc(0) };
      return [{ kind: 'end', head: st.head }];
    }
    return [];
  }

  private parseHead(text: string): MessageHead | undefined {
    const lines = text.slice(0, -4).split('\r\n');
    const startLine = lines[0] ?? '';
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) return undefined;
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const te = (headers['transfer-encoding'] ?? '').toLowerCase();
    const cl = headers['content-length'] !== undefined ? parseInt(headers['content-length'], 10) : undefined;
    if (cl !== undefined && (Number.isNaN(cl) || cl < 0)) return undefined;
    if (this.role === 'request') {
      const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(startLine);
      if (!m) return undefined;
      return { startLine, headers, method: m[1]!, path: m[2]!, body: te.includes('chunked') ? 'chunked' : (cl ?? 0) };
    }
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(startLine);
    if (!m) return undefined;
    const status = parseInt(m[1]!, 10);
    if (status >= 100 && status < 200) return { startLine, headers, status, body: 0 };
    const requestMethod = this.nextRequestMethod();
    let body: MessageHead['body'];
    if (requestMethod === 'HEAD' || status === 204 || status === 304) body = 0;
    else if (te.includes('chunked')) body = 'chunked';
    else if (cl !== undefined) body = cl;
    else body = 'close';
    return { startLine, headers, status, requestMethod, body };
  }

  private startBody(head: MessageHead, out: Segment[]): void {
    if (head.status === 101) this.state = { s: 'raw' };
    else if (head.body === 0) this.endMessage(head, out);
    else if (head.body === 'chunked') this.state = { s: 'chunk-size', head, line: Buffer.alloc(0), offset: 0 };
    else if (head.body === 'close') this.state = { s: 'close', head, offset: 0 };
    else this.state = { s: 'length', head, remaining: head.body, offset: 0 };
  }

  private endMessage(head: MessageHead, out: Segment[]): void {
    out.push({ kind: 'end', head });
    this.state = { s: 'head', buf: Buffer.alloc(0) };
  }
}
