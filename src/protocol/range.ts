/**
 * HTTP Range header parsing for blobs (RFC 9110 §14). regcache serves one range: a
 * multi-range request is answered 200 with the whole body (RFC 9110 §14.2 lets a server
 * ignore Range), never 416 and never multipart, which no registry client asks for.
 */

export type RangeResult =
  | { kind: 'none' }
  | { kind: 'range'; start: number; end: number } // inclusive end
  | { kind: 'unsatisfiable' }
  | { kind: 'invalid'; reason: string };

/**
 * Parses a Range header against a resource of `size` bytes (undefined when not yet known:
 * then only `bytes=N-` and `bytes=N-M` can be resolved, with end clamped later).
 */
export function parseRange(header: string | undefined, size: number | undefined): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: 'invalid', reason: 'only byte ranges are supported' };
  const spec = m[1]!.trim();
  // Several ranges: ignore the header and send the whole body (a client still gets its bytes).
  if (spec.includes(',')) return { kind: 'none' };
  const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
  if (!r || (r[1] === '' && r[2] === '')) return { kind: 'invalid', reason: `malformed range ${JSON.stringify(spec)}` };
  if (r[1]!.length > 15 || r[2]!.length > 15) return { kind: 'unsatisfiable' };
  if (r[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(r[2]);
    if (size === undefined) return { kind: 'invalid', reason: 'suffix range on a blob of unknown size' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  let end = r[2] === '' ? Number.MAX_SAFE_INTEGER : Number(r[2]);
  if (end < start) return { kind: 'invalid', reason: 'range end before start' };
  if (size !== undefined) {
    if (start >= size) return { kind: 'unsatisfiable' };
    end = Math.min(end, size - 1);
  }
  return { kind: 'range', start, end };
}
