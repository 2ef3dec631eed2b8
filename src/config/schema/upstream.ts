/** `upstreams.<host>`: one entry per upstream registry. Every key applies live. */
import type { UpstreamConfig } from '../types.js';
import { fail } from '../errors.js';
import { registryHostProblem } from '../endpoint-rules.js';
import { key, section } from './define.js';
import { allowedHostList, bool, duration, oneOf, port, secret, str, stringList, upstreamUrl } from './values.js';

export const upstream = section<Omit<UpstreamConfig, 'host'>>('upstreams', 'map', {
  url: key(upstreamUrl, { required: true, apply: 'live', doc: 'registry API base URL without `/v2` (`https://registry-1.docker.io`); http or https, no credentials, query or fragment' }),
  username: key(str, { apply: 'live', doc: 'user for token or Basic auth; needs `password`' }),
  password: key(secret, { apply: 'live', doc: 'password or token of `username` (use `${VAR}`); never logged' }),
  ca: key(str, { apply: 'live', doc: 'extra CA bundle (PEM file) for this upstream' }),
  insecureSkipVerify: key(bool, { default: false, apply: 'live', doc: 'skip TLS verification for this upstream' }),
  port: key(port, { apply: 'live', doc: 'also listen on this port (on `listen`\'s host); every request there goes to this upstream. Must differ from `listen`, `metrics.listen` and other upstreams\' ports' }),
  tagTTL: key(duration, { defaultDoc: '`cache.tagTTL`', apply: 'live', doc: 'per-upstream tag TTL' }),
  immutableTags: key(stringList('glob patterns'), { default: [], apply: 'live', doc: 'glob patterns (`v*.*.*`, `sha256-*`) of tags trusted forever once cached' }),
  blobReader: key(oneOf(['socket', 'undici'] as const), { default: 'socket', apply: 'live', doc: 'how blob bodies are read: `socket` (regcache\'s HTTP/1.1 reader, one reused read buffer: less CPU per GB, see docs/cache.md) or `undici` (the HTTP client of every other upstream request); a way back if an upstream or its CDN answers in a way the socket reader refuses' }),
  allowedHosts: key(allowedHostList, { default: [], apply: 'live', doc: 'host names, IPs or CIDRs to which this upstream\'s redirects and token realms may go even when loopback, private or link-local' }),
}, {
  entry: { field: 'host', doc: '<host>', nameProblem: registryHostProblem },
  check: (u, prefix) => {
    if ((u.username === undefined) !== (u.password === undefined)) fail(prefix, 'username and password go together');
  },
});
