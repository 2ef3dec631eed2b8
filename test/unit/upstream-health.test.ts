/** The failure detector's transitions (once each) and the causes operators read in logs. */
import { describe, expect, it } from 'vitest';
import { causeOf, classify } from '../../src/upstream/classify.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import { UpstreamHealth } from '../../src/upstream/health.js';

describe('UpstreamHealth', () => {
  it('reports down once when marked down, up once on the first success after', () => {
    const clock = { now: 0 };
    const seen: string[] = [];
    const h = new UpstreamHealth(2, 1000, () => clock.now);
    h.onChange = (up) => seen.push(up ? 'up' : 'down');
    h.failure();
    expect(seen).toEqual([]);
    h.failure();
    h.failure();
    expect(seen).toEqual(['down']);
    expect(h.isDown).toBe(true);
    expect(h.allow()).toBe(false);
    clock.now = 1500;
    expect(h.allow()).toBe(true); // one probe
    expect(h.allow()).toBe(false);
    h.failure(); // the probe failed: down again, not reported twice
    expect(seen).toEqual(['down']);
    clock.now = 3000;
    h.allow();
    h.success();
    h.success();
    expect(seen).toEqual(['down', 'up']);
  });
});

describe('causeOf and classify', () => {
  it.each([
    [503, 'status 503', 'server', true],
    [429, 'status 429', 'throttled', true],
    [404, 'status 404', 'not-found', false],
    [new UpstreamError('unreachable', 'x', 'ENOTFOUND'), 'dns (ENOTFOUND)', 'unreachable', true],
    [new UpstreamError('unreachable', 'x', 'ECONNREFUSED'), 'refused (ECONNREFUSED)', 'unreachable', true],
    [new UpstreamError('unreachable', 'x', 'ECONNRESET'), 'reset (ECONNRESET)', 'unreachable', true],
    [new UpstreamError('unreachable', 'x', 'CERT_HAS_EXPIRED'), 'tls (CERT_HAS_EXPIRED)', 'unreachable', true],
    [new UpstreamError('unreachable', 'x', 'ERR_TLS_CERT_ALTNAME_INVALID'), 'tls (ERR_TLS_CERT_ALTNAME_INVALID)', 'unreachable', true],
    [new UpstreamError('timeout', 'x'), 'timeout', 'timeout', true],
    [new UpstreamError('redirect', 'x'), 'redirect', 'redirect', false],
    [new UpstreamError('auth', 'x'), 'auth', 'auth', false],
  ])('%s -> %s', (input, cause, cls, transient) => {
    expect(causeOf(input)).toBe(cause);
    expect(classify(input).class).toBe(cls);
    expect(classify(input).transient).toBe(transient);
  });
});
