import { describe, expect, it } from 'vitest';
import { compileTagFilter, patternSource, tagFilterProblem } from '../../src/protocol/tag-pattern.js';

const TAGS = ['v3', 'v3.0', 'v3.1', 'v3.2', 'v3.3', 'v3.10', 'v3.1.4', 'v3.2-beta', 'v30', 'v4.1', 'latest', 'v3a'];

// The Quay repository-mirroring docs' examples, with what each keeps out of TAGS.
const QUAY: Array<[string, string[]]> = [
  ['v3*', ['v3', 'v3.0', 'v3.1', 'v3.2', 'v3.3', 'v3.10', 'v3.1.4', 'v3.2-beta', 'v30', 'v3a']],
  ['v3.*', ['v3.0', 'v3.1', 'v3.2', 'v3.3', 'v3.10', 'v3.1.4', 'v3.2-beta']],
  ['v3.?', ['v3.0', 'v3.1', 'v3.2', 'v3.3']],
  ['v3.[12]', ['v3.1', 'v3.2']],
  ['v3.[12]*', ['v3.1', 'v3.2', 'v3.10', 'v3.1.4', 'v3.2-beta']],
  ['v3.[!1]*', ['v3.0', 'v3.2', 'v3.3', 'v3.2-beta']],
  ['*', TAGS],
  ['latest, v4.*', ['v4.1', 'latest']],
  ['v3.[0-2]', ['v3.0', 'v3.1', 'v3.2']],
];

describe('Quay tag patterns', () => {
  it.each(QUAY)('%s', (pattern, kept) => {
    const f = compileTagFilter({ include: pattern });
    expect(TAGS.filter(f)).toEqual(TAGS.filter((t) => kept.includes(t)));
  });

  it('matches the whole tag, and regex characters are literal', () => {
    expect(compileTagFilter({ include: 'v3' })('v30')).toBe(false);
    expect(compileTagFilter({ include: 'v3.1' })('v3x1')).toBe(false);
    expect(compileTagFilter({ include: 'a+b' })('a+b')).toBe(true);
    expect(compileTagFilter({ include: 'a+b' })('aab')).toBe(false);
  });

  it('reads an unclosed [ as a literal, like fnmatch', () => {
    expect(patternSource('v[1')).toBe('v\\[1');
    expect(compileTagFilter({ include: 'v[1' })('v[1')).toBe(true);
  });

  it('exclusions win over inclusions', () => {
    const f = compileTagFilter({ include: 'v3.*', exclude: '*-beta, v3.1*' });
    expect(TAGS.filter(f)).toEqual(['v3.0', 'v3.2', 'v3.3']);
  });

  it('a semver range keeps only full versions inside it', () => {
    const tags = ['1.2.3', 'v1.4.0', '1.9.9', '2.0.0', '1.5.0-rc.1', '1.5', 'latest'];
    const f = compileTagFilter({ include: '*', semver: '>=1.3.0 <2' });
    expect(tags.filter(f)).toEqual(['v1.4.0', '1.9.9']);
    const g = compileTagFilter({ include: 'v*', semver: '^1.0.0' });
    expect(tags.filter(g)).toEqual(['v1.4.0']);
  });

  it('names what is wrong with a spec', () => {
    expect(tagFilterProblem({ include: ' , ' })).toMatch(/at least one pattern/);
    expect(tagFilterProblem({ include: '*', semver: 'not a range!' })).toMatch(/invalid semver range/);
    expect(tagFilterProblem({ include: 'v 1' })).toMatch(/spaces/);
    expect(tagFilterProblem({ include: 'v1,  v2' })).toBeUndefined();
    expect(tagFilterProblem({ include: 'vé' })).toMatch(/non-ASCII/);
  });
});
