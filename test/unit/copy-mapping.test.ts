import { describe, expect, it } from 'vitest';
import { checkWrites, MappingError, parseMappingArgs, parseMappingText, writesOf } from '../../src/transfer/mapping.js';
import { formatRef, parseImageRef } from '../../src/transfer/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof MappingError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected a MappingError');
}

describe('image references', () => {
  it('parses registry, repository, tag, digest and wildcard', () => {
    expect(parseImageRef('quay.io/org/app:v1')).toEqual({ registry: 'quay.io', repo: 'org/app', tag: 'v1' });
    expect(parseImageRef(`localhost:5000/a/b@${D}`)).toEqual({ registry: 'localhost:5000', repo: 'a/b', digest: D });
    expect(parseImageRef('127.0.0.1:5000/app:*')).toEqual({ registry: '127.0.0.1:5000', repo: 'app', allTags: true });
    expect(parseImageRef('ghcr.io/org/app')).toEqual({ registry: 'ghcr.io', repo: 'org/app' });
  });
  it('folds Docker Hub names into docker.io/library', () => {
    expect(parseImageRef('docker.io/nginx:1.27')).toEqual({ registry: 'docker.io', repo: 'library/nginx', tag: '1.27' });
    expect(parseImageRef('index.docker.io/bitnami/redis')).toEqual({ registry: 'docker.io', repo: 'bitnami/redis' });
  });
  it('refuses references without registry, bad tags, bad digests, tag with digest', () => {
    for (const bad of ['nginx:1', 'org/app:v1', 'quay.io/Org/app', 'quay.io/app:.x', 'quay.io/app@sha256:abc', `quay.io/app:v1@${D}`, '']) {
      expect(() => parseImageRef(bad), bad).toThrow();
    }
  });
  it('formats back', () => {
    for (const s of ['quay.io/org/app:v1', `quay.io/org/app@${D}`, 'quay.io/org/app:*', 'quay.io/org/app']) expect(formatRef(parseImageRef(s))).toBe(s);
  });
});

describe('mapping files', () => {
  it('reads SRC DST [DST...], SRC=DST, comments and blank lines, with line numbers', () => {
    const text = [
      '# mirror to quay',
      '',
      'docker.io/library/nginx:1.27 quay.io/org/nginx:1.27 quay.io/org/nginx:stable   # two tags',
      'ghcr.io/org/tool:*=quay.io/org/tool',
      '   ',
      `ghcr.io/org/pinned@${D} quay.io/org/pinned`,
      'ghcr.io/org/all quay.io/org/all',
      'ghcr.io/org/app:v2 quay.io/org/app2',
    ].join('\n');
    const m = parseMappingText(text, 'mapping.txt');
    expect(m.map((x) => x.origin.line)).toEqual([3, 4, 6, 7, 8]);
    expect(m[0]!.destinations.map(formatRef)).toEqual(['quay.io/org/nginx:1.27', 'quay.io/org/nginx:stable']);
    expect(m[1]!.source.allTags).toBe(true);
    expect(m[1]!.destinations.map(formatRef)).toEqual(['quay.io/org/tool:*']);
    // by digest with a repository destination: pushed by digest only, no tag
    expect(m[2]!.destinations[0]).toEqual({ registry: 'quay.io', repo: 'org/pinned' });
    // a repository without tag is every tag
    expect(m[3]!.source.allTags).toBe(true);
    // a destination repository inherits the source's tag
    expect(formatRef(m[4]!.destinations[0]!)).toBe('quay.io/org/app2:v2');
    expect(m[0]!.origin.file).toBe('mapping.txt');
  });

  it('names file and line of every bad line', () => {
    const text = [
      'quay.io/a:v1 quay.io/b:v1',
      'quay.io/a:v1',
      'nginx:1 quay.io/b:v2',
      'quay.io/a:* quay.io/b:v3',
      `quay.io/a:v1 quay.io/b@${D}`,
      'quay.io/a:v1=quay.io/b:v4=quay.io/c',
      'quay.io/a:v1=quay.io/b quay.io/c',
      'quay.io/a:v1 quay.io/b:*',
    ].join('\n');
    const p = problems(() => parseMappingText(text, 'maps/m1'));
    expect(p.map((l) => l.split(': ')[0])).toEqual(['maps/m1:2', 'maps/m1:3', 'maps/m1:4', 'maps/m1:5', 'maps/m1:6', 'maps/m1:7', 'maps/m1:8']);
    expect(p[0]).toMatch(/needs a source and at least one destination/);
    expect(p[1]).toMatch(/names no registry/);
    expect(p[2]).toMatch(/copies every tag.*must be a repository/);
    expect(p[3]).toMatch(/names a digest/);
    expect(p[6]).toMatch(/uses \*/);
  });

  it('reads command-line arguments: SRC=DST each, the rest one SRC DST [DST...]', () => {
    const m = parseMappingArgs(['quay.io/a:1=quay.io/b:1', 'quay.io/c:2', 'quay.io/d', 'quay.io/e:x']);
    expect(m.map((x) => formatRef(x.source))).toEqual(['quay.io/a:1', 'quay.io/c:2']);
    expect(m[1]!.destinations.map(formatRef)).toEqual(['quay.io/d:2', 'quay.io/e:x']);
    expect(problems(() => parseMappingArgs(['quay.io/c:2']))[0]).toMatch(/^command line:1: /);
  });
});

describe('checks before anything is copied', () => {
  it('refuses a destination equal to its source', () => {
    for (const line of ['quay.io/a:v1 quay.io/a:v1', 'quay.io/a:v1 quay.io/a', 'quay.io/a:* quay.io/a', `quay.io/a@${D} quay.io/a`]) {
      const p = problems(() => checkWrites(writesOf(parseMappingText(line, 'f'))));
      expect(p[0], line).toMatch(/^f:1: destination .* is its own source/);
    }
    // same repository, another tag: fine
    expect(() => checkWrites(writesOf(parseMappingText('quay.io/a:v1 quay.io/a:v1-copy', 'f')))).not.toThrow();
  });

  it('refuses a destination tag written twice, naming both lines', () => {
    const text = 'quay.io/a:v1 quay.io/b:v1\nquay.io/c:v2 quay.io/x:1 quay.io/b:v1\nquay.io/d:* quay.io/w\nquay.io/e quay.io/w';
    const p = problems(() => checkWrites(writesOf(parseMappingText(text, 'm'))));
    expect(p).toEqual([
      'm:2: destination quay.io/b:v1 is also written by m:1 (quay.io/a:v1)',
      'm:4: destination quay.io/w:* is also written by m:3 (quay.io/d:*)',
    ]);
  });

  it('finds overlaps across files and across a wildcard expanded into tags', () => {
    const a = parseMappingText('quay.io/a:v1 reg.example.com/b:v1', 'one');
    const b = parseMappingText('quay.io/c:v1=reg.example.com/b:v1', 'two');
    expect(problems(() => checkWrites(writesOf([...a, ...b])))[0]).toBe('two:1: destination reg.example.com/b:v1 is also written by one:1 (quay.io/a:v1)');
    // a digest-only destination occupies no tag
    expect(() => checkWrites(writesOf(parseMappingText(`quay.io/a@${D} q.io/b\nquay.io/c@${D} q.io/b`, 'f')))).not.toThrow();
  });
});
