import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OciError } from '../../src/protocol/errors.js';
import { isValidDigest, isValidName, isValidTag } from '../../src/protocol/grammar.js';
import { resolveNamespace } from '../../src/protocol/namespace.js';
import { parseTarget } from '../../src/protocol/paths.js';
import { parseRange } from '../../src/protocol/range.js';

const HEX64 = 'a'.repeat(64);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof OciError) return `${err.status} ${JSON.parse(err.body()).errors[0].code}`;
    throw err;
  }
}

describe('grammar', () => {
  it('accepts spec names and refuses others', () => {
    for (const n of ['nginx', 'library/nginx', 'a/b/c', 'my-app', 'my__app', 'a.b', 'a---b']) expect(isValidName(n), n).toBe(true);
    for (const n of ['', 'Nginx', 'a//b', '/a', 'a/', 'a_', '-a', 'a..b', '..', 'a/../b', 'a\u0000b', 'a%2fb', 'a:b', 'a'.repeat(256)]) {
      expect(isValidName(n), JSON.stringify(n)).toBe(false);
    }
  });
  it('tags and digests', () => {
    expect(isValidTag('v1.2.3')).toBe(true);
    expect(isValidTag('_x')).toBe(true);
    expect(isValidTag('.x')).toBe(false);
    expect(isValidTag('a'.repeat(129))).toBe(false);
    expect(isValidDigest(`sha256:${HEX64}`)).toBe(true);
    expect(isValidDigest(`sha512:${'b'.repeat(128)}`)).toBe(true);
    expect(isValidDigest(`sha256:${'A'.repeat(64)}`)).toBe(false);
    expect(isValidDigest(`md5:${'a'.repeat(32)}`)).toBe(false);
    expect(isValidDigest(`sha256:${HEX64}0`)).toBe(false);
  });
});

describe('parseTarget', () => {
  it('routes every endpoint', () => {
    expect(parseTarget('/v2/').endpoint).toEqual({ kind: 'base' });
    expect(parseTarget('/v2/library/nginx/manifests/latest').endpoint).toEqual({ kind: 'manifest', name: 'library/nginx', reference: 'latest', isDigest: false });
    expect(parseTarget(`/v2/a/blobs/sha256:${HEX64}?ns=docker.io`)).toMatchObject({ ns: 'docker.io', endpoint: { kind: 'blob', digest: `sha256:${HEX64}` } });
    expect(parseTarget('/v2/a/b/tags/list?n=10&last=x').endpoint).toEqual({ kind: 'tags', name: 'a/b', n: 10, last: 'x' });
    expect(parseTarget(`/v2/a/referrers/sha256:${HEX64}?artifactType=x`).endpoint).toMatchObject({ kind: 'referrers', artifactType: 'x' });
    expect(parseTarget('/v2/a/blobs/uploads/').endpoint).toEqual({ kind: 'upload', name: 'a' });
    expect(parseTarget('/v2/_catalog?n=5').endpoint).toEqual({ kind: 'catalog', n: 5 });
  });
  it('refuses bad input with the right OCI error', () => {
    expect(codeOf(() => parseTarget('/v2/a/manifests/-bad'))).toBe('400 TAG_INVALID');
    expect(codeOf(() => parseTarget('/v2/a/manifests/sha256:abc'))).toBe('400 DIGEST_INVALID');
    expect(codeOf(() => parseTarget(`/v2/a/manifests/md5:${'a'.repeat(32)}`))).toBe('400 DIGEST_INVALID');
    expect(codeOf(() => parseTarget('/v2/a/blobs/latest'))).toBe('400 DIGEST_INVALID');
    expect(codeOf(() => parseTarget('/v2/%2e%2e/blobs/latest'))).toBe('400 NAME_INVALID');
    expect(codeOf(() => parseTarget('/v2/a%2fb/manifests/x'))).toBe('400 NAME_INVALID');
    expect(codeOf(() => parseTarget('/v2/a%00/manifests/x'))).toBe('400 NAME_INVALID');
    expect(codeOf(() => parseTarget('/v2/a/manifests/x?ns=a&ns=b'))).toBe('400 REQUEST_INVALID');
    expect(codeOf(() => parseTarget('/v2/a/tags/list?n=-1'))).toBe('400 PAGINATION_NUMBER_INVALID');
    expect(codeOf(() => parseTarget('/v3/x'))).toBe('404 NOT_FOUND');
    expect(codeOf(() => parseTarget(`/v2/${'a'.repeat(5000)}/manifests/x`))).toBe('414 REQUEST_INVALID');
  });
  it('never accepts a percent sign, NUL or dot-segment anywhere in a repository path (property)', () => {
    const evil = fc.constantFrom('%2e%2e', '%2f', '%00', '..', '\u0000', '%', '//', 'A');
    // '?' would start the query string: what follows is then not part of the path at all.
    const part = fc.string({ maxLength: 20 }).filter((x) => !x.includes('?'));
    fc.assert(fc.property(part, evil, part, (a, bad, b) => {
      const target = `/v2/${a}${bad}${b}/manifests/latest`;
      let ok = true;
      try {
        const t = parseTarget(target);
        if (t.endpoint.kind === 'manifest') {
          // Accepted by the path parser: the name check after upstream routing must refuse it.
          resolveNamespace(t.endpoint.name, undefined, { hosts: new Set(['docker.io']), defaultHost: 'docker.io' });
        }
      } catch (err) {
        ok = err instanceof OciError && err.status >= 400 && err.status < 500;
        return ok;
      }
      return false;
    }));
  });
  it('any accepted name satisfies the spec grammar (property)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        const t = parseTarget(`/v2/${s}/manifests/latest`);
        if (t.endpoint.kind !== 'manifest') return true;
        const r = resolveNamespace(t.endpoint.name, undefined, { hosts: new Set(['ghcr.io']), defaultHost: 'ghcr.io' });
        return isValidName(r.repo);
      } catch (err) {
        return err instanceof OciError;
      }
    }));
  });
});

describe('resolveNamespace', () => {
  const hosts = new Set(['docker.io', 'ghcr.io', '127.0.0.1:5001']);
  it('follows the documented order', () => {
    expect(resolveNamespace('library/nginx', 'docker.io', { hosts })).toEqual({ upstream: 'docker.io', repo: 'library/nginx' });
    expect(resolveNamespace('nginx', 'docker.io', { hosts })).toEqual({ upstream: 'docker.io', repo: 'library/nginx' });
    expect(resolveNamespace('ghcr.io/org/app', undefined, { hosts })).toEqual({ upstream: 'ghcr.io', repo: 'org/app' });
    expect(resolveNamespace('org/app', undefined, { hosts, defaultHost: 'ghcr.io' })).toEqual({ upstream: 'ghcr.io', repo: 'org/app' });
    expect(resolveNamespace('nginx', undefined, { hosts, fixedHost: 'docker.io' })).toEqual({ upstream: 'docker.io', repo: 'library/nginx' });
    expect(resolveNamespace('127.0.0.1:5001/x', undefined, { hosts })).toEqual({ upstream: '127.0.0.1:5001', repo: 'x' });
  });
  it('refuses hosts that are not configured', () => {
    expect(codeOf(() => resolveNamespace('a', 'evil.example.com', { hosts }))).toBe('404 NAME_UNKNOWN');
    expect(codeOf(() => resolveNamespace('a', 'localhost', { hosts }))).toBe('404 NAME_UNKNOWN');
    expect(codeOf(() => resolveNamespace('a', '169.254.169.254', { hosts, defaultHost: 'docker.io' }))).toBe('404 NAME_UNKNOWN');
    expect(codeOf(() => resolveNamespace('a/b', undefined, { hosts }))).toBe('404 NAME_UNKNOWN');
    expect(codeOf(() => resolveNamespace('a', 'ghcr.io', { hosts, fixedHost: 'docker.io' }))).toBe('404 NAME_UNKNOWN');
  });
  it('refuses a path prefix naming an unconfigured registry instead of sending it to defaultUpstream (issue 15 item 4)', () => {
    const opts = { hosts, defaultHost: 'docker.io' };
    for (const name of ['quay.io/org/app', 'localhost/app', 'localhost:5000/app', 'registry.internal:443/team/app', '10.0.0.5/x']) {
      let err: unknown;
      try {
        resolveNamespace(name, undefined, opts);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(OciError);
      expect((err as OciError).status).toBe(404);
      expect((err as OciError).code).toBe('NAME_UNKNOWN');
      expect((err as OciError).message).toContain(`registry ${name.split('/')[0]} is not a configured upstream`);
    }
    // Docker Hub namespaces (no dot, no colon, not localhost) still go to the default.
    expect(resolveNamespace('org/app', undefined, opts)).toEqual({ upstream: 'docker.io', repo: 'org/app' });
    expect(resolveNamespace('my-org/app.name', undefined, opts)).toEqual({ upstream: 'docker.io', repo: 'my-org/app.name' });
    // A one-component name with a dot is a repository, not a host prefix.
    expect(resolveNamespace('app.v2', undefined, opts)).toEqual({ upstream: 'docker.io', repo: 'library/app.v2' });
  });
  it('only ever picks a configured host (property)', () => {
    fc.assert(fc.property(fc.string(), fc.option(fc.string()), (name, ns) => {
      try {
        const r = resolveNamespace(name, ns ?? undefined, { hosts, defaultHost: 'docker.io' });
        return hosts.has(r.upstream) && isValidName(r.repo);
      } catch (err) {
        return err instanceof OciError;
      }
    }));
  });
});

describe('parseRange', () => {
  it('handles the forms clients send', () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'range', start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ kind: 'range', start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=5-1', 100).kind).toBe('invalid');
    expect(parseRange('items=0-1', 100).kind).toBe('invalid');
    expect(parseRange('bytes=abc', 100).kind).toBe('invalid');
    expect(parseRange('bytes=10-', undefined)).toEqual({ kind: 'range', start: 10, end: Number.MAX_SAFE_INTEGER });
  });
  it('ignores a multi-range header: the whole body, 200 (issue 15 item 23)', () => {
    expect(parseRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-1, 5-6', 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=-5,0-1', 100)).toEqual({ kind: 'none' });
    expect(parseRange('bytes=0-1,5-6', undefined)).toEqual({ kind: 'none' });
  });
  it('a satisfiable range always lies inside the blob (property)', () => {
    fc.assert(fc.property(fc.string(), fc.integer({ min: 0, max: 1e9 }), (h, size) => {
      const r = parseRange(h, size);
      return r.kind !== 'range' || (r.start >= 0 && r.start <= r.end && r.end < size);
    }));
  });
});
