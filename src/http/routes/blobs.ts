/** /v2/<name>/blobs/<digest>: GET (Range supported) and HEAD; DELETE as the repository allows. */
import { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { BlobBody } from '../../store/blob-store.js';
import { holdStallGuard } from '../h2-guard.js';
import { abort, answerable, sendError, toOciError, type Res } from '../respond.js';
import type { Route, RouteContext } from '../route.js';
import { repositoryOf } from './repository.js';

type BlobEndpoint = { kind: 'blob'; name: string; digest: string };

function isBlobBody(body: Readable | BlobBody): body is BlobBody {
  return typeof (body as BlobBody).writeTo === 'function';
}

/** The headers of a blob answer: taken off again when it turns into an error answer. */
const BLOB_HEADERS = ['content-type', 'content-length', 'content-range', 'docker-content-digest', 'accept-ranges', 'etag'];

/** `quiet`: timeouts held off until the first byte (holdTimeouts): called then, and at the end. */
function streamBody(ctx: RouteContext, body: Readable | BlobBody, source: 'cache' | 'upstream', quiet?: () => void): Promise<void> {
  const { req, res, state, deps } = ctx;
  const done = (err: Error | null | undefined): void => {
    deps.metrics.bytesServed.inc({ source }, state.bytes);
    if (!err) return;
    state.error = err.message;
    if (answerable(res)) {
      // Nothing has gone out (an upstream that stalled or failed before the first byte):
      // the client gets an error answer with its status (a stall 504, a failure 502).
      for (const h of BLOB_HEADERS) res.removeHeader(h);
      const oci = toOciError(err);
      state.error = `${oci.code}: ${err.message}`;
      sendError(req, res, oci);
      return;
    }
    // Never end cleanly after a failed body: the client must see an aborted response.
    abort(res);
  };
  // HTTP/1.1: a committed blob writes itself with pooled buffers. HTTP/2 gets a plain stream.
  if (isBlobBody(body) && res instanceof ServerResponse && body.canWritePooled()) {
    return body.writeTo(res).then(
      (n) => {
        state.bytes = n;
        res.end();
        done(null);
      },
      (err: Error) => done(err),
    );
  }
  const src = isBlobBody(body) ? body.stream() : body;
  const dest = res as NodeJS.WritableStream & { writableFinished: boolean };
  // Not pipeline(): it destroys the response when the source fails, and a response that has
  // sent nothing yet is to be answered with an error instead (done()).
  return new Promise((resolve) => {
    let over = false;
    const finish = (err: Error | null): void => {
      if (over) return;
      over = true;
      quiet?.();
      src.unpipe(dest);
      // A source left unread would hold its upstream connection or its fill for ever.
      if (!src.readableEnded) src.destroy();
      done(err);
      resolve();
    };
    src.on('data', (c: Buffer) => {
      if (state.bytes === 0) quiet?.();
      state.bytes += c.length;
    });
    // Listeners that stay (not once): an 'error' after the first must not go unhandled.
    src.on('error', (err: Error) => finish(err));
    src.once('close', () => {
      if (!src.readableEnded) finish(new Error('blob body closed before its end'));
    });
    dest.on('error', (err: Error) => finish(err));
    // An HTTP/2 response also finishes when its stream is reset (the client cancelled, or the
    // stall guard): complete only if the source had ended.
    dest.once('finish', () => finish(src.readableEnded ? null : new Error('client went away')));
    dest.once('close', () => finish(dest.writableFinished ? null : new Error('client went away')));
    src.pipe(dest);
  });
}

const get = async (ctx: RouteContext): Promise<void> => {
  const { req, res, state } = ctx;
  const ep = ctx.target.endpoint as BlobEndpoint;
  const repo = repositoryOf(ctx, ep.name);
  const range = req.headers.range;
  const method = ctx.method === 'HEAD' ? 'HEAD' : 'GET';
  const a = await repo.getBlob(ep.digest, { method, range: typeof range === 'string' ? range : undefined });
  state.cache = a.source;
  if (a.location) {
    res.statusCode = 307;
    res.setHeader('location', a.location);
    res.setHeader('docker-content-digest', a.digest);
    return void res.end();
  }
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('docker-content-digest', a.digest);
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('etag', `"${a.digest}"`);
  if (a.range) {
    res.statusCode = 206;
    res.setHeader('content-range', `bytes ${a.range.start}-${a.range.end}/${a.size ?? '*'}`);
    res.setHeader('content-length', a.range.end - a.range.start + 1);
  } else {
    res.statusCode = 200;
    if (a.size !== undefined) res.setHeader('content-length', a.size);
  }
  if (!a.body) return void res.end();
  return streamBody(ctx, a.body, a.source === 'hit' ? 'cache' : 'upstream', a.quietUntilVerified ? holdTimeouts(res) : undefined);
};

/**
 * Holds off the connection's inactivity timeout (HTTP/1, `server.idleTimeout`) or the
 * stream's stall guard (HTTP/2) until the returned function is called (streamBody: at the
 * body's first byte, or its end): a body that deliberately sends nothing while the whole blob
 * comes and verifies may take longer than either. The upstream's own idle timeout still
 * bounds a stall there.
 */
function holdTimeouts(res: Res): () => void {
  let resume: () => void;
  if ('stream' in res && res.stream) {
    resume = holdStallGuard(res.stream);
  } else {
    const socket = (res as ServerResponse).socket;
    const ms = socket?.timeout;
    if (!socket || !ms) return () => undefined;
    socket.setTimeout(0);
    resume = () => {
      if (!socket.destroyed) socket.setTimeout(ms);
    };
  }
  let resumed = false;
  return () => {
    if (resumed) return;
    resumed = true;
    resume();
  };
}

export const blobs: Route = {
  endpoint: 'blob', kind: 'blob', authorize: true,
  methods: {
    GET: get,
    HEAD: get,
    DELETE: async (ctx) => {
      const ep = ctx.target.endpoint as BlobEndpoint;
      await repositoryOf(ctx, ep.name).deleteBlob(ep.digest);
      ctx.res.statusCode = 202;
      ctx.res.end();
    },
  },
};
