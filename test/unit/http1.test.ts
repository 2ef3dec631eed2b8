import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyFraming, ChunkedDecoder, getRequestHead, HttpProtocolError, keepsAlive, parseResponseHead } from '../../src/protocol/http1.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('HTTP/1.1 response head', () => {
  it('parses status, lower-cased fields, repeated fields and the head length; undefined until the empty line', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nhello';
    const head = parseResponseHead(b(text))!;
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('5');
    expect(head.headers['x-a']).toBe('1, 2');
    expect(head.headers['set-cookie']).toEqual(['a', 'b']);
    expect(head.length).toBe(text.length - 5);
    expect(parseResponseHead(b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'))).toBeUndefined();
    expect(parseResponseHead(b('HTTP/1.1 307\r\nLocation: /x\r\n\r\n'))!.status).toBe(307);
  });

  it('refuses what is not an HTTP/1.x answer head', () => {
    for (const bad of [
      'HTTP/2 200 OK\r\n\r\n',
      'ICY 200 OK\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
      'HTTP/1.1 200 OK\r\n: empty name\r\n\r\n',
      'HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n',
    ]) expect(() => parseResponseHead(b(bad)), bad).toThrow(HttpProtocolError);
  });

  it('frames bodies by transfer-encoding, content-length or close; refuses ambiguous lengths and other codings', () => {
    const head = (fields: string, status = 200) => parseResponseHead(b(`HTTP/1.1 ${status} OK\r\n${fields}\r\n`))!;
    expect(bodyFraming('GET', head('Content-Length: 42\r\n'))).toEqual({ kind: 'length', length: 42 });
    expect(bodyFraming('GET', head('Content-Length: 42\r\nContent-Length: 42\r\n'))).toEqual({ kind: 'length', length: 42 });
    expect(bodyFraming('GET', head('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n'))).toEqual({ kind: 'chunked' });
    expect(bodyFraming('GET', head(''))).toEqual({ kind: 'close' });
    expect(bodyFraming('HEAD', head('Content-Length: 42\r\n'))).toEqual({ kind: 'none' });
    expect(bodyFraming('GET', head('Content-Length: 42\r\n', 304))).toEqual({ kind: 'none' });
    for (const fields of ['Content-Length: 1\r\nContent-Length: 2\r\n', 'Content-Length: -1\r\n', 'Content-Length: 1e3\r\n',
      'Content-Length: 0x10\r\n', 'Transfer-Encoding: gzip, chunked\r\n', 'Transfer-Encoding: identity\r\n']) {
      expect(() => bodyFraming('GET', head(fields)), fields).toThrow(HttpProtocolError);
    }
  });

  it('keeps a connection only when the body is delimited and the server did not say close (HTTP/1.0: close by default)', () => {
    const h = (s: string) => parseResponseHead(b(s))!;
    const len = { kind: 'length', length: 1 } as const;
    expect(keepsAlive(h('HTTP/1.1 200 OK\r\n\r\n'), len)).toBe(true);
    expect(keepsAlive(h('HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n'), len)).toBe(false);
    expect(keepsAlive(h('HTTP/1.0 200 OK\r\n\r\n'), len)).toBe(false);
    expect(keepsAlive(h('HTTP/1.1 200 OK\r\n\r\n'), { kind: 'close' })).toBe(false);
    // Both framings: chunked is read, and the connection is not trusted after.
    expect(keepsAlive(h('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'), { kind: 'chunked' })).toBe(false);
  });

  it('writes a GET head, and refuses header values or targets that would split it', () => {
    expect(getRequestHead('/v2/a/blobs/sha256:x', 'up:5000', { 'user-agent': 'r', host: 'ignored' }))
      .toBe('GET /v2/a/blobs/sha256:x HTTP/1.1\r\nhost: up:5000\r\nuser-agent: r\r\n\r\n');
    expect(() => getRequestHead('/a b', 'h', {})).toThrow(HttpProtocolError);
    expect(() => getRequestHead('/a', 'h', { x: 'a\r\nInjected: 1' })).toThrow(HttpProtocolError);
    expect(() => getRequestHead('/a', 'h', { 'bad name': 'v' })).toThrow(HttpProtocolError);
    expect(() => getRequestHead('/a', 'h', { x: 'nul\u0000byte' })).toThrow(HttpProtocolError);
    expect(getRequestHead('/a', 'h', { x: 'tab\tok' })).toContain('x: tab\tok\r\n');
  });
});

/** Encodes `payload` in chunks of the given sizes, with optional extensions and trailers. */
function chunked(payload: Buffer, sizes: number[], opts: { ext?: boolean; trailer?: boolean; upper?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= payload.length) break;
    const piece = payload.subarray(at, at + size);
    at += piece.length;
    const hex = opts.upper ? piece.length.toString(16).toUpperCase() : piece.length.toString(16);
    parts.push(b(`${hex}${opts.ext ? ';name="v"' : ''}\r\n`), piece, b('\r\n'));
  }
  if (at < payload.length) parts.push(b(`${(payload.length - at).toString(16)}\r\n`), payload.subarray(at), b('\r\n'));
  parts.push(b(`0\r\n${opts.trailer ? 'X-Trailer: 1\r\n' : ''}\r\n`));
  return Buffer.concat(parts);
}

/** Decodes `wire` pushed in pieces cut at `cuts`; returns the payload and where the body ended in the last piece. */
function decode(wire: Buffer, cuts: number[]): { out: Buffer; endAt: number; done: boolean } {
  const got: Buffer[] = [];
  const d = new ChunkedDecoder((buf, s, e) => got.push(Buffer.from(buf.subarray(s, e))));
  const points = [...new Set(cuts.filter((c) => c > 0 && c < wire.length))].sort((x, y) => x - y);
  let prev = 0;
  let endAt = -1;
  for (const p of [...points, wire.length]) {
    // Each piece lives in its own buffer, at an offset, as a socket read would.
    const piece = Buffer.concat([b('junk'), wire.subarray(prev, p)]);
    endAt = d.push(piece, 4, piece.length);
    prev = p;
    if (endAt >= 0) break;
  }
  return { out: Buffer.concat(got), endAt, done: d.done };
}

describe('chunked transfer coding', () => {
  it('decodes any payload cut into any pieces, with extensions, upper-case hex and trailers', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 4000 }), { maxLength: 12 }),
      fc.boolean(), fc.boolean(), fc.boolean(),
      (bytes, sizes, cuts, ext, trailer, upper) => {
        const payload = Buffer.from(bytes);
        const wire = chunked(payload, sizes, { ext, trailer, upper });
        const r = decode(wire, cuts);
        expect(r.done).toBe(true);
        expect(r.out.equals(payload)).toBe(true);
      },
    ), { numRuns: 300 });
  });

  it('says where the body ended, so bytes after it are seen (a connection out of step is not reused)', () => {
    const payload = randomBytes(100);
    const wire = Buffer.concat([chunked(payload, [60]), b('HTTP/1.1 200 OK')]);
    const got: Buffer[] = [];
    const d = new ChunkedDecoder((buf, s, e) => got.push(Buffer.from(buf.subarray(s, e))));
    const end = d.push(wire, 0, wire.length);
    expect(end).toBe(wire.length - 'HTTP/1.1 200 OK'.length);
    expect(Buffer.concat(got).equals(payload)).toBe(true);
  });

  it('refuses malformed framing instead of guessing', () => {
    for (const bad of ['zz\r\n', '\r\n', '5\r\nhello!!', '5\nhello\r\n', '5\r\nhelloXY', '10000000000000\r\n', '0\r\nX: 1\r\r']) {
      expect(() => decode(b(bad + '\r\n0\r\n\r\n'), []), JSON.stringify(bad)).toThrow(HttpProtocolError);
    }
    // Not ended yet: no error, more is needed.
    expect(decode(b('5\r\nhel'), []).endAt).toBe(-1);
  });
});
