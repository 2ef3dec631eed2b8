/**
 * The page at /ui/ (index.html, app.js, app.css), served from memory. The policy allows
 * only this origin's script, style and API calls, no inline code, no framing, so a value
 * that slipped into the page could not run, and the page works without any network but
 * regcache's. `/ui` redirects to `/ui/` so relative URLs resolve.
 */
import { PAGE_HTML } from '../../ui/page-html.js';
import { PAGE_JS } from '../../ui/page-script.js';
import { PAGE_CSS } from '../../ui/page-style.js';
import { sendBuffer } from '../respond.js';
import type { Route } from '../route.js';
import { adminOf } from './api-guard.js';

const FILES: Record<string, { body: Buffer; type: string }> = {
  'index.html': { body: Buffer.from(PAGE_HTML), type: 'text/html; charset=utf-8' },
  'app.js': { body: Buffer.from(PAGE_JS), type: 'text/javascript; charset=utf-8' },
  'app.css': { body: Buffer.from(PAGE_CSS), type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export const ui: Route = {
  endpoint: 'ui', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      adminOf(ctx);
      if (ctx.req.url === '/ui') {
        ctx.res.statusCode = 308;
        ctx.res.setHeader('location', '/ui/');
        ctx.res.end();
        return;
      }
      const f = FILES[(ctx.target.endpoint as { file: string }).file]!;
      sendBuffer(ctx.req, ctx.res, 200, f.body, f.type, SECURITY_HEADERS);
    },
  },
};
