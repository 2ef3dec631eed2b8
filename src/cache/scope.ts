/**
 * Repository scope: the store is shared by digest, but content is served under
 * <upstream>/<repo> only when it reached the cache through that repository. Otherwise the
 * upstream repository is asked first (HEAD) and the link recorded, so a private layer
 * never leaks through another repository's name.
 */
import { discard } from '../upstream/body.js';
import { OciError } from '../protocol/errors.js';
import type { IndexDb } from '../storage/index-db.js';
import type { UpstreamClient } from '../upstream/client.js';
import { fromUpstreamFailure, fromUpstreamStatus } from './upstream-errors.js';

export interface Scope {
  upstream: string;
  repo: string;
}

export async function ensureLinked(index: IndexDb, client: UpstreamClient, scope: Scope, digest: string, kind: 'blob' | 'manifest'): Promise<void> {
  if (index.isLinked(scope.upstream, scope.repo, digest)) return;
  let res;
  try {
    res = await client.request({ method: 'HEAD', path: `/v2/${scope.repo}/${kind}s/${digest}`, repo: scope.repo });
  } catch (err) {
    throw fromUpstreamFailure(err, scope.upstream);
  }
  if (res.status === 200) {
    discard(res.body);
    try {
      index.link(scope.upstream, scope.repo, digest);
    } catch {
      // Disk full: the upstream confirmed the repository has it; serve, just do not remember.
    }
    return;
  }
  if (res.status === 404) {
    discard(res.body);
    throw new OciError(kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', `${kind} unknown to repository ${scope.repo}`, { digest });
  }
  throw fromUpstreamStatus(res, scope.upstream, kind);
}
