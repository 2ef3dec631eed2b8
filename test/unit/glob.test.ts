/** Repository glob patterns as a table of cases. */
import { describe, expect, it } from 'vitest';
import { compileGlob, GlobSet, globProblem } from '../../src/protocol/glob.js';

const cases: Array<[string, string, boolean]> = [
  ['team/**', 'team/app', true],
  ['team/**', 'team/a/b/c', true],
  ['team/**', 'team', false],
  ['team/**', 'teams/app', false],
  ['team/*', 'team/app', true],
  ['team/*', 'team/a/b', false],
  ['docker.io/myorg/**', 'docker.io/myorg/app', true],
  ['docker.io/myorg/**', 'dockerxio/myorg/app', false],
  ['ci-?/app', 'ci-1/app', true],
  ['ci-?/app', 'ci-12/app', false],
  ['ci-?/app', 'ci-/app', false],
  ['localhost:5000/dev/*', 'localhost:5000/dev/x', true],
  ['**', 'anything/at/all', true],
  ['a/**/z', 'a/b/c/z', true],
  ['a/**/z', 'a/z', false],
  ['app', 'app', true],
  ['app', 'app2', false],
];

describe('compileGlob', () => {
  it.each(cases)('%s against %s: %s', (pattern, name, want) => {
    expect(globProblem(pattern)).toBeUndefined();
    expect(compileGlob(pattern).test(name)).toBe(want);
  });
});

describe('globProblem', () => {
  it.each(['', 'Team/**', 'a b', '/team', 'team/', 'a//b', 'a/***', 'x[0-9]'])('refuses %j', (p) => {
    expect(globProblem(p)).toBeTypeOf('string');
  });
});

describe('GlobSet', () => {
  it('returns the first matching pattern in list order with its value', () => {
    const s = new GlobSet<number>([['team/app', 1], ['team/**', 2]]);
    expect(s.first('team/app')).toEqual({ pattern: 'team/app', value: 1 });
    expect(s.first('team/other')).toEqual({ pattern: 'team/**', value: 2 });
    expect(s.first('other')).toBeUndefined();
    expect(s.matches('team/x/y')).toBe(true);
  });
});
