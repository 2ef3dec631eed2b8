/** The internal fill endpoint's tokens: one digest, one minute, the secret never in the token. */
import { describe, expect, it } from 'vitest';
import { checkFillToken, fillToken } from '../../src/replicas/fill-token.js';

const d1 = `sha256:${'a'.repeat(64)}`;
const d2 = `sha256:${'b'.repeat(64)}`;

describe('fill tokens', () => {
  it('open the digest they were made for, with the same secret, until they expire', () => {
    const t = fillToken('s3cret', d1, 1_000_000);
    expect(t).not.toContain('s3cret');
    expect(checkFillToken('s3cret', d1, t, 1_000_000)).toBe(true);
    expect(checkFillToken('s3cret', d1, t, 1_059_999)).toBe(true);
    expect(checkFillToken('s3cret', d1, t, 1_060_001)).toBe(false);
    expect(checkFillToken('s3cret', d2, t, 1_000_000)).toBe(false);
    expect(checkFillToken('other', d1, t, 1_000_000)).toBe(false);
  });

  it('refuse malformed tokens and far-future expiries', () => {
    for (const bad of [undefined, '', 'x', '123.', `123.${'0'.repeat(64)}`, `${'9'.repeat(16)}.${'0'.repeat(64)}`]) {
      expect(checkFillToken('s', d1, bad, 0)).toBe(false);
    }
    const far = fillToken('s', d1, 10_000_000);
    expect(checkFillToken('s', d1, far, 0)).toBe(false);
  });
});
