/**
 * Repository scope: the store is shared by digest, but content is served under
 * <upstream>/<repo> only when that repository's upstream served it (a fetch or a HEAD
 * there). Otherwise the upstream repository is asked first (HEAD, with the full manifest
 * Accept list) and the link recorded, so a private layer never leaks through another
 * repository's name, and a manifest naming a layer never links that layer.
 */
import { OciError } from '../../protocol/errors.js';
import type { MetadataStore, RepoRef } from '../../store/metadata-store.js';
import type { RegistryClient } from '../../upstream/registry-client.js';
import { toClientError } from './remote-errors.js';

export type Scope = RepoRef;

export async function ensureLinked(meta: MetadataStore, client: RegistryClient, scope: Scope, digest: string, kind: 'blob' | 'manifest'): Promise<void> {
  if (await meta.isLinked(scope, digest)) return;
  let has: boolean;
  try {
    has = await client.has(scope.repo, kind, digest);
  } catch (err) {
    throw toClientError(err, scope.upstream, kind);
  }
  if (!has) throw new OciError(kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', `${kind} unknown to repository ${scope.repo}`, { digest });
  try {
    await meta.link(scope, digest);
  } catch {
    // Disk full: the upstream confirmed the repository has it; serve, just do not remember.
  }
}
