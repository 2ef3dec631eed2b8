/**
 * The admin API's OpenAPI 3.1 description, served at /api/v1/openapi.json. A unit test
 * checks that every admin route is described here and every path here parses to one.
 */
import { VERSION } from '../version.js';

const err = { $ref: '#/components/responses/Error' };
const json = (schema: unknown): unknown => ({ content: { 'application/json': { schema } } });
const repoParams = [
  { name: 'upstream', in: 'path', required: true, schema: { type: 'string' }, description: 'configured upstream host (`docker.io`) or `hosted`' },
  { name: 'repo', in: 'path', required: true, schema: { type: 'string' }, description: 'repository name, slashes included (`library/alpine`)' },
];
const tagParam = { name: 'tag', in: 'path', required: true, schema: { type: 'string' } };
const jobParam = { name: 'job', in: 'path', required: true, schema: { type: 'string' } };
const csrf = { name: 'X-Regcache-Request', in: 'header', required: true, schema: { type: 'string' }, description: 'any value: cross-site request protection' };
const n = (max: number, dflt: number): unknown => ({ name: 'n', in: 'query', schema: { type: 'integer', minimum: 1, maximum: max, default: dflt } });
const obj = { type: 'object' };

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'regcache admin API', version: VERSION,
    description: 'What the cache holds, how the upstreams are doing, sync and copy jobs, events. See docs/api.md. '
      + 'With `auth` configured every call needs a login with the admin permission (`auth.publicStatus` opens status); '
      + 'POST and DELETE need the `X-Regcache-Request` header.',
  },
  servers: [{ url: '/api/v1' }],
  components: {
    securitySchemes: { basic: { type: 'http', scheme: 'basic' } },
    responses: {
      Error: json({
        type: 'object', required: ['errors'],
        properties: { errors: { type: 'array', items: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, detail: {} } } } },
      }),
    },
    schemas: {
      Status: {
        type: 'object',
        properties: {
          version: { type: 'string' }, startedAt: { type: 'string', format: 'date-time' }, uptimeSeconds: { type: 'integer' },
          store: { type: 'object', properties: { bytes: { type: 'integer' }, blobs: { type: 'integer' }, manifests: { type: 'integer' }, maxSize: { type: ['integer', 'null'] }, fill: { type: ['number', 'null'] } } },
          hitRatio: { type: 'object', properties: { blob: { type: ['number', 'null'] }, manifest: { type: ['number', 'null'] } } },
          bytesServed: { type: 'object', properties: { cache: { type: 'integer' }, upstream: { type: 'integer' } } },
          fills: { type: 'array', items: { type: 'object', properties: { upstream: { type: 'string' }, repo: { type: 'string' }, digest: { type: 'string' }, received: { type: 'integer' }, size: { type: 'integer' } } } },
          upstreams: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                host: { type: 'string' }, url: { type: 'string' }, state: { enum: ['up', 'down'] }, since: { type: 'string', format: 'date-time' },
                lastError: { type: 'object', properties: { at: { type: 'string' }, cause: { type: 'string' } } },
                requests: { type: 'object', properties: { total: { type: 'integer' }, failed: { type: 'integer' } } },
                rateLimitRemaining: { type: 'object', properties: { value: { type: 'string' }, at: { type: 'string' } } },
              },
            },
          },
        },
      },
      Repository: {
        type: 'object',
        properties: { name: { type: 'string' }, upstream: { type: 'string' }, repo: { type: 'string' }, hosted: { type: 'boolean' }, tags: { type: 'integer' }, bytes: { type: 'integer' }, lastPull: { type: ['string', 'null'] },
          lastPush: { type: ['string', 'null'], description: 'hosted repositories: latest manifest or tag push; null for cached ones' } },
      },
      Tag: {
        type: 'object',
        properties: {
          tag: { type: 'string' }, digest: { type: 'string' }, mediaType: { type: ['string', 'null'] }, platforms: { type: 'array', items: { type: 'string' } },
          bytes: { type: 'integer' }, lastPull: { type: ['string', 'null'] }, validatedAt: { type: ['string', 'null'] },
          lastPush: { type: ['string', 'null'], description: 'hosted tags: when the tag was last pushed; null for cached tags' },
          pinned: { type: 'boolean', description: 'a sync job holds this image (retention keeps it)' },
        },
      },
      Event: {
        type: 'object', required: ['id', 'type', 'time', 'data'],
        properties: { id: { type: 'string' }, type: { type: 'string' }, time: { type: 'string' }, subject: { type: 'string' }, data: obj },
      },
      Job: { type: 'object', description: 'JobSummary, or JobDetail with config and history (src/jobs/job-control.ts)' },
    },
  },
  security: [{ basic: [] }],
  paths: {
    '/status': { get: { summary: 'Overview: store, hit ratios, bytes served, fills in flight, upstream health', responses: { 200: json({ $ref: '#/components/schemas/Status' }), default: err } } },
    '/openapi.json': { get: { summary: 'This description', responses: { 200: json(obj) } } },
    '/repositories': {
      get: {
        summary: 'Repositories with content, cached and hosted, ordered by name',
        parameters: [{ name: 'q', in: 'query', schema: { type: 'string' }, description: 'substring of `<upstream>/<repo>`, case-insensitive' }, n(1000, 50), { name: 'last', in: 'query', schema: { type: 'string' }, description: '`next` of the previous page' }],
        responses: { 200: json({ type: 'object', properties: { repositories: { type: 'array', items: { $ref: '#/components/schemas/Repository' } }, next: { type: 'string' } } }), default: err },
      },
    },
    '/repositories/{upstream}/{repo}': {
      get: {
        summary: 'One repository with its tags', parameters: [...repoParams, n(1000, 100), { name: 'last', in: 'query', schema: { type: 'string' } }],
        responses: { 200: json({ allOf: [{ $ref: '#/components/schemas/Repository' }, { type: 'object', properties: { tags: { type: 'array', items: { $ref: '#/components/schemas/Tag' } }, next: { type: 'string' } } }] }), default: err },
      },
    },
    '/repositories/{upstream}/{repo}/-/tags/{tag}': {
      delete: { summary: 'Forget a cached tag (its content stays until retention)', parameters: [...repoParams, tagParam, csrf], responses: { 200: json(obj), default: err } },
    },
    '/repositories/{upstream}/{repo}/-/tags/{tag}/refresh': {
      post: { summary: 'Revalidate a cached tag now: one upstream HEAD', parameters: [...repoParams, tagParam, csrf], responses: { 200: json({ type: 'object', properties: { digest: { type: ['string', 'null'] }, changed: { type: 'boolean' } } }), default: err } },
    },
    '/jobs': { get: { summary: 'Sync and copy jobs', responses: { 200: json({ type: 'object', properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } } } }), default: err } } },
    '/jobs/{job}': { get: { summary: 'One job with its run history and per-tag outcomes', parameters: [jobParam], responses: { 200: json({ $ref: '#/components/schemas/Job' }), default: err } } },
    '/jobs/{job}/run': {
      post: {
        summary: 'Run the job now (SYNC_NOW)', parameters: [jobParam, csrf, { name: 'wait', in: 'query', schema: { enum: ['1'] }, description: 'answer when the run ends' }],
        responses: { 200: json(obj), 202: json(obj), default: err },
      },
    },
    '/jobs/{job}/cancel': { post: { summary: 'Cancel a running job (409 when it is not running)', parameters: [jobParam, csrf], responses: { 200: json(obj), default: err } } },
    '/events': {
      get: {
        summary: 'Recent events, oldest first',
        parameters: [{ name: 'after', in: 'query', schema: { type: 'string' } }, { name: 'type', in: 'query', schema: { type: 'string' }, description: 'comma-separated types or prefixes (`upstream,sync.failed`)' }, n(1000, 100)],
        responses: { 200: json({ type: 'object', properties: { events: { type: 'array', items: { $ref: '#/components/schemas/Event' } } } }), default: err },
      },
    },
    '/events/stream': {
      get: {
        summary: 'Server-sent events: every new event (`id` is the event id; Last-Event-ID, or `after` on a first connection, replays what came after it), and with status=1 a `status` event every 2 s',
        parameters: [
          { name: 'status', in: 'query', schema: { enum: ['1'] } },
          { name: 'after', in: 'query', schema: { type: 'string', pattern: '^[0-9]{1,15}$' } },
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } },
        ],
        responses: { 200: { content: { 'text/event-stream': { schema: { type: 'string' } } } }, default: err },
      },
    },
  },
} as const;
