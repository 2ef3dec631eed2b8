/**
 * The shape of a route: (endpoint kind, method) -> handler. The request kind used in logs
 * and metrics comes from the route. Routes talk to Repository objects only, through the
 * Namespace.
 */
import type { Logger } from 'pino';
import type { Metrics, CacheResult } from '../metrics/metrics.js';
import type { OciError } from '../protocol/errors.js';
import type { Endpoint, ParsedTarget } from '../protocol/paths.js';
import type { JobControl } from '../jobs/job-control.js';
import type { ListenerContext, Namespace } from '../registry/namespace.js';
import type { Admin } from '../status/admin.js';
import type { Req, Res } from './respond.js';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RequestState {
  upstream: string;
  kind: string;
  cache?: CacheResult;
  bytes: number;
  error?: string;
}

export interface HttpDeps {
  namespace: Namespace;
  metrics: Metrics;
  log: Logger;
  /** Readiness check for /readyz. */
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  /** Optional access control: returns an error to send, or undefined to proceed. */
  authorize?(req: Req, request: AccessRequest): Promise<OciError | undefined>;
  /** Whether the caller may pull repository `name` (mount sources, the catalog); absent: anyone may. */
  canPull?(req: Req, listener: ListenerContext, ns: string | undefined, name: string): Promise<boolean>;
  /** Repositories with content, as clients name them (`<upstream>/<repo>`, hosted names), optionally under one upstream. */
  catalog(last: string, n: number, upstream?: string): Promise<string[]>;
  /** The admin API and page (`/api/v1/`, `/ui/`); absent: they answer 404. */
  admin?: Admin;
  /** Sync jobs (the /api/v1/sync routes); absent: none. */
  jobs?: JobControl;
}

/** What a request asks to do, for access control. */
export interface AccessRequest {
  endpoint: Endpoint;
  method: Method;
  listener: ListenerContext;
  ns: string | undefined;
}

export interface RouteContext {
  req: Req;
  res: Res;
  target: ParsedTarget;
  method: Method;
  state: RequestState;
  deps: HttpDeps;
  listener: ListenerContext & { serveMetrics: boolean };
}

export type RouteHandler = (ctx: RouteContext) => Promise<void>;

export interface Route {
  /** The endpoint kind this route serves (protocol/paths.ts). */
  endpoint: Endpoint['kind'];
  /** Kind label for logs and metrics. */
  kind: string;
  methods: Partial<Record<Method, RouteHandler>>;
  /** Whether access control applies (health never, metrics by its own rule). */
  authorize: boolean;
}
