/** Hosted retention plans as tables of cases. */
import { describe, expect, it } from 'vitest';
import { planHostedRetention, type HostedImage } from '../../src/registry/hosted/hosted-retention.js';

const H = 3_600_000;
const NOW = 1000 * H;
const img = (digest: string, o: Partial<HostedImage> = {}): HostedImage => ({ digest, pushedAt: NOW - 100 * H, pulledAt: 0, tags: [], parents: [], ...o });

describe('planHostedRetention', () => {
  it('off: nothing goes', () => {
    expect(planHostedRetention([img('a'), img('b', { tags: [{ tag: 'v1', at: 0 }] })], {}, NOW)).toEqual({ tags: [], digests: [] });
  });

  it('keepTags keeps the newest N tags; the image that lost its last tag stays unless untaggedGrace says', () => {
    const images = [
      img('a', { tags: [{ tag: 'v1', at: NOW - 30 * H }] }),
      img('b', { tags: [{ tag: 'v2', at: NOW - 20 * H }] }),
      img('c', { tags: [{ tag: 'v3', at: NOW - 10 * H }, { tag: 'latest', at: NOW - 10 * H }] }),
    ];
    expect(planHostedRetention(images, { keepTags: 2 }, NOW)).toEqual({ tags: ['v1', 'v2'], digests: [] });
    expect(planHostedRetention(images, { keepTags: 2, untaggedGrace: 24 * H }, NOW)).toEqual({ tags: ['v1', 'v2'], digests: ['a', 'b'] });
  });

  it('maxAge: neither pulled nor pushed for that long goes with its tags; a recent pull keeps it', () => {
    const images = [
      img('old', { tags: [{ tag: 'old', at: NOW - 50 * H }] }),
      img('pulled', { tags: [{ tag: 'p', at: NOW - 50 * H }], pulledAt: NOW - H }),
      img('repushed', { pushedAt: NOW - 50 * H, tags: [{ tag: 'r', at: NOW - H }] }),
    ];
    expect(planHostedRetention(images, { maxAge: 24 * H }, NOW)).toEqual({ tags: ['old'], digests: ['old'] });
  });

  it('untaggedGrace: untagged manifests go after the grace; an index keeps its children, a subject its referrers', () => {
    const images = [
      img('fresh', { pushedAt: NOW - H }),
      img('stale'),
      img('index', { tags: [{ tag: 'multi', at: NOW }] }),
      img('child', { parents: ['index'] }),
      img('sig', { subject: 'index' }),
    ];
    expect(planHostedRetention(images, { untaggedGrace: 24 * H }, NOW)).toEqual({ tags: [], digests: ['stale'] });
  });

  it('when an index goes, its children and their referrers go with it', () => {
    const images = [
      img('index', { tags: [{ tag: 'multi', at: NOW - 50 * H }] }),
      img('child', { parents: ['index'] }),
      img('sig', { subject: 'child' }),
      img('shared', { parents: ['index', 'other'] }),
      img('other', { tags: [{ tag: 'keep', at: NOW }] }),
    ];
    expect(planHostedRetention(images, { maxAge: 24 * H }, NOW)).toEqual({ tags: ['multi'], digests: ['child', 'index', 'sig'] });
  });
});
