/**
 * Per-session defences of the HTTP/2 listener (issue 10, items 1 and 5):
 * - a stream whose pending write makes no progress for `stallMs` (the client never opens its
 *   flow-control window) is reset with CANCEL, which frees its file and buffers;
 * - a session whose client resets streams faster than RESET_RATE per second (beyond a burst
 *   of RESET_BURST) is closed with GOAWAY ENHANCE_YOUR_CALM ("rapid reset", CVE-2023-44487):
 *   every reset stream costs a request's work here and none of it is useful to the client.
 * The number of concurrent streams per session is bounded by the SETTINGS sent at session
 * start (H2_MAX_STREAMS, in listeners.ts); with the small per-stream buffering of FileBody
 * that also bounds the bytes a session can hold.
 */
import http2 from 'node:http2';

/** Concurrent streams a client may open per session; more are refused (REFUSED_STREAM). */
export const H2_MAX_STREAMS = 100;
/** Client stream resets allowed per second, sustained ... */
export const RESET_RATE = 100;
/** ... and in a burst. A puller cancels a handful of streams, never hundreds. */
export const RESET_BURST = 200;

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;

interface ResetBucket { tokens: number; at: number }

/** Each guarded stream's stall timeout, so a response may hold it off for a while (holdStallGuard). */
const stallOf = new WeakMap<http2.ServerHttp2Stream, number>();

/**
 * Holds off the stall guard of `stream` while its response deliberately sends nothing (a
 * Range of a blob streamed through waits for the whole blob to verify); the returned
 * function arms it again.
 */
export function holdStallGuard(stream: http2.ServerHttp2Stream): () => void {
  const ms = stallOf.get(stream);
  if (ms === undefined) return () => undefined;
  stream.setTimeout(0);
  return () => {
    if (!stream.closed) stream.setTimeout(ms);
  };
}

export function guardH2(server: http2.Http2SecureServer, stallMs: number): void {
  const buckets = new WeakMap<http2.Http2Session, ResetBucket>();
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    // The stream timer restarts on every write the session completes, so it fires only when
    // a write has been pending (flow control closed) or nothing was written for stallMs.
    let resetHere = false;
    if (stallMs > 0) {
      stallOf.set(stream, stallMs);
      stream.setTimeout(stallMs, () => {
        if (stream.closed) return;
        resetHere = true;
        stream.close(NGHTTP2_CANCEL);
      });
    }
    const session = stream.session;
    // A stream closed with an error code that regcache did not send was reset by the client.
    stream.once('close', () => {
      if (resetHere || stream.rstCode === NGHTTP2_NO_ERROR || stream.rstCode === undefined) return;
      if (!session || session.destroyed) return;
      const now = Date.now();
      const b = buckets.get(session) ?? { tokens: RESET_BURST, at: now };
      b.tokens = Math.min(RESET_BURST, b.tokens + ((now - b.at) * RESET_RATE) / 1000) - 1;
      b.at = now;
      buckets.set(session, b);
      if (b.tokens < 0) {
        // GOAWAY first (destroy alone may not get it onto the wire), then cut the session. Its
        // last-stream-id is the stream that used up the allowance: the client learns how far
        // the server got, and nothing later was processed.
        session.goaway(NGHTTP2_ENHANCE_YOUR_CALM, stream.id ?? 0);
        setImmediate(() => session.destroy());
      }
    });
  });
}
