/**
 * `hosted` and `hostedRepositories.<pattern>`: which repository names accept pushes
 * (docs/hosted.md). Absent patterns: every repository is a pull-through cache and pushes
 * answer 405.
 */
import { globProblem } from '../../protocol/glob.js';
import { registryHostProblem } from '../endpoint-rules.js';
import type { Config, HostedRepositoryConfig } from '../types.js';
import { key, section } from './define.js';
import { bool, duration, int, orOff, size, stringList } from './values.js';
import { fail } from '../errors.js';

function registryNames(v: unknown, k: string): string[] {
  const list = stringList('registry host names (host or host:port)')(v, k);
  list.forEach((h, i) => {
    const problem = registryHostProblem(h);
    if (problem) fail(`${k}[${i}]`, problem);
  });
  return list;
}

export const hosted = section<Config['hosted']>('hosted', 'always', {
  names: key(registryNames, { default: [], apply: 'restart', doc: 'registry names of regcache itself (`regcache.local:5000`): `<name>/<repo>` and `?ns=<name>` address hosted repositories; `containerd-config` writes mirror entries for them' }),
  uploadExpiry: key(duration, { default: '24h', apply: 'restart', doc: 'an upload session with no request for this long is removed with its bytes' }),
  maxManifestSize: key(size, { default: '4MiB', apply: 'restart', doc: 'larger pushed manifests are refused (413) without being buffered' }),
  gcGrace: key(duration, { default: '1h', apply: 'live', doc: 'a blob pushed to a hosted repository that no manifest references is removed by GC after this (a push in progress gets this long to send its manifest)' }),
  gcInterval: key(duration, { default: '1h', apply: 'live', doc: 'how often hosted retention and GC run; `0`: only `regcache gc`' }),
});

export const hostedRepositories = section<Omit<HostedRepositoryConfig, 'pattern'>>('hostedRepositories', 'map', {
  deleteManifests: key(bool, { default: false, apply: 'live', doc: '`DELETE /v2/<name>/manifests/<digest>` is allowed (else 405)' }),
  deleteTags: key(bool, { default: false, apply: 'live', doc: '`DELETE /v2/<name>/manifests/<tag>` is allowed (else 405)' }),
  deleteBlobs: key(bool, { default: false, apply: 'live', doc: '`DELETE /v2/<name>/blobs/<digest>` is allowed (else 405)' }),
  sparseIndex: key(bool, { default: false, apply: 'live', doc: 'an index may be pushed without its child manifests (platform-filtered copies)' }),
  maxAge: key(orOff(duration), { apply: 'live', doc: 'hosted retention: images neither pulled nor pushed for this long are removed; `0`/absent: off' }),
  keepTags: key(int(1), { apply: 'live', doc: 'hosted retention: only the N most recently pushed tags stay; absent: all' }),
  untaggedGrace: key(orOff(duration), { apply: 'live', doc: 'hosted retention: manifests without a tag are removed this long after their push; absent: kept' }),
}, {
  entry: { field: 'pattern', doc: '<pattern>', nameProblem: globProblem },
});
