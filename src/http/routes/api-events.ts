/**
 * Events: GET /api/v1/events (recent, from the bus's ring: `after`, `type`, `n`) and
 * GET /api/v1/events/stream, server-sent events. The stream first replays what came after
 * `Last-Event-ID` (a reconnecting EventSource sends it), then every new event as it is
 * emitted; with `?status=1` it also sends the status view every 2 s (`event: status`) so
 * the page shows fills in flight live. A comment line every 15 s keeps proxies and the
 * idle timeout from closing a quiet stream. It ends when the client goes or the server stops.
 */
import type { ServerResponse } from 'node:http';
import type { RegcacheEvent } from '../../events/event-bus.js';
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';
import { adminOf, type Ep } from './api-guard.js';

const STATUS_EVERY_MS = 2000;
const HEARTBEAT_MS = 15_000;

export const apiEvents: Route = {
  endpoint: 'api-events', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const ep = ctx.target.endpoint as Ep<'api-events'>;
      const events = adminOf(ctx).events.recent({
        ...(ep.after !== undefined ? { afterId: ep.after } : {}), ...(ep.types ? { types: ep.types } : {}), limit: ep.n ?? 100,
      });
      ctx.res.setHeader('cache-control', 'no-store');
      sendJson(ctx.req, ctx.res, 200, { events });
    },
  },
};

function frame(event: string, data: unknown, id?: string): string {
  // JSON has no raw newlines, so one data line carries it whole.
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const apiEventsStream: Route = {
  endpoint: 'api-events-stream', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const admin = adminOf(ctx);
      const ep = ctx.target.endpoint as Ep<'api-events-stream'>;
      const { req, res } = ctx;
      res.statusCode = 200;
      res.setHeader('content-type', 'text/event-stream; charset=utf-8');
      res.setHeader('cache-control', 'no-store');
      res.setHeader('x-accel-buffering', 'no');
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      // A reconnecting EventSource sends Last-Event-ID; a first connection may say `after`.
      const lastId = req.headers['last-event-id'];
      const after = typeof lastId === 'string' && /^\d{1,15}$/.test(lastId) ? lastId : ep.after;
      const send = (chunk: string): void => {
        if (res.writableEnded || res.destroyed) return;
        ctx.state.bytes += Buffer.byteLength(chunk);
        // Both response types take a string; their write overloads just do not unify.
        (res as ServerResponse).write(chunk);
      };
      const onEvent = (e: RegcacheEvent): void => send(frame(e.type, e, e.id));
      // Ask the client to wait 2 s before reconnecting after a drop.
      send('retry: 2000\n\n');
      if (after !== undefined) for (const e of admin.events.recent({ afterId: after })) onEvent(e);
      const unsubscribe = admin.events.subscribe(onEvent);
      const pushStatus = (): void => {
        admin.status().then((s) => send(frame('status', s)), () => undefined);
      };
      if (ep.status) pushStatus();
      const statusTimer = ep.status ? setInterval(pushStatus, STATUS_EVERY_MS) : undefined;
      const heartbeat = setInterval(() => send(': keep-alive\n\n'), HEARTBEAT_MS);
      await new Promise<void>((resolve) => {
        const end = (): void => {
          unsubscribe();
          clearInterval(heartbeat);
          if (statusTimer) clearInterval(statusTimer);
          admin.closing.removeEventListener('abort', end);
          if (!res.writableEnded) res.end();
          resolve();
        };
        res.once('close', end);
        if (admin.closing.aborted) end();
        else admin.closing.addEventListener('abort', end, { once: true });
      });
    },
  },
};
