import { describe, expect, it } from 'vitest';
import { selectChildren } from '../../src/jobs/platforms.js';

const index = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    { digest: 'sha256:a', platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'sha256:b', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { digest: 'sha256:c', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { digest: 'sha256:d', platform: { os: 'unknown', architecture: 'unknown' } },
    { digest: 'sha256:e' },
    { nodigest: true },
  ],
}));

describe('platform filter', () => {
  it.each([
    [[], ['sha256:a', 'sha256:b', 'sha256:c', 'sha256:d', 'sha256:e']],
    [['linux/amd64'], ['sha256:a']],
    [['linux/arm64'], ['sha256:b']],
    [['linux/arm64/v8', 'linux/amd64'], ['sha256:a', 'sha256:b']],
    [['linux/arm64/v9'], []],
    [['windows/amd64'], []],
  ])('%j keeps %j', (filter, kept) => {
    expect(selectChildren(index, filter)).toEqual(kept);
  });

  it('a body that is not an index has no children', () => {
    expect(selectChildren(Buffer.from('nope'), [])).toEqual([]);
    expect(selectChildren(Buffer.from('{"layers":[]}'), [])).toEqual([]);
  });
});
