/**
 * What every admin route shares: the Admin view (404 when the server has none), and the
 * cross-site request check for state-changing requests. A browser sends a login it holds
 * (Basic auth) with any request another site makes it send, so POST and DELETE must prove
 * they come from a script of this origin or from a non-browser client:
 * - the custom header `X-Regcache-Request` must be present: a cross-site page cannot add a
 *   custom header without a CORS preflight, and regcache answers no preflight (OPTIONS is 405);
 * - when the browser says where the request comes from (`Sec-Fetch-Site`, `Origin`), it
 *   must be this origin.
 */
import { OciError } from '../../protocol/errors.js';
import type { Admin } from '../../status/admin.js';
import type { RouteContext } from '../route.js';
import { requestHeader } from '../respond.js';

/** The parsed endpoint of one admin kind. */
export type Ep<K extends string> = Extract<RouteContext['target']['endpoint'], { kind: K }>;

export const CSRF_HEADER = 'x-regcache-request';

export function adminOf(ctx: RouteContext): Admin {
  const a = ctx.deps.admin;
  // The admin API is served on the main listener only, not on per-upstream ports.
  if (!a || ctx.listener.fixedHost !== undefined) throw new OciError('NOT_FOUND', 'the admin API is not served on this listener');
  return a;
}

/** Throws DENIED unless a state-changing request is provably not cross-site. */
export function assertSameOrigin(ctx: RouteContext): void {
  if (requestHeader(ctx.req, CSRF_HEADER) === undefined) {
    throw new OciError('DENIED', `state-changing admin requests need the ${CSRF_HEADER} header (cross-site request protection)`);
  }
  const site = requestHeader(ctx.req, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new OciError('DENIED', 'cross-site admin request refused');
  const origin = requestHeader(ctx.req, 'origin');
  const host = requestHeader(ctx.req, 'host') ?? requestHeader(ctx.req, ':authority');
  if (origin !== undefined && origin !== 'null') {
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      throw new OciError('DENIED', 'cross-site admin request refused');
    }
    if (originHost !== host) throw new OciError('DENIED', 'cross-site admin request refused');
  } else if (origin === 'null') {
    throw new OciError('DENIED', 'cross-site admin request refused');
  }
}

