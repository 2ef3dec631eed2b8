/**
 * A Repository that is a pull-through cache of one upstream repository. Reads go through
 * the shared Proxy (fills, manifest cache, listings); writes answer 405 UNSUPPORTED naming
 * what would allow them.
 */
import { OciError } from '../../protocol/errors.js';
import type {
  BlobAnswer, BlobGet, ListingAnswer, ManifestAnswer, ManifestGet, Repository, RepositoryName, TagsAnswer, UploadAnswer,
} from '../repository.js';
import type { Proxy } from './proxy.js';

function readOnly(what: string, name: RepositoryName): OciError {
  const full = `${name.upstream}/${name.repo}`;
  return new OciError('UNSUPPORTED', `${what} is not supported: ${full} is a pull-through cache; a hostedRepositories.<pattern> entry matching ${full} would allow it`, undefined, {
    headers: { allow: 'GET, HEAD' },
  });
}

export class ProxyRepository implements Repository {
  readonly kind = 'proxy' as const;

  constructor(private readonly proxy: Proxy, readonly name: RepositoryName) {}

  getManifest(reference: string, isDigest: boolean, opts: ManifestGet): Promise<ManifestAnswer> {
    const client = this.proxy.client(this.name.upstream);
    return this.proxy.manifests.get(client, {
      scope: this.name, reference, isDigest, method: opts.method, accepted: opts.accepted, acceptHeader: opts.acceptHeader,
      policy: this.proxy.policy(client),
    });
  }

  async putManifest(): Promise<never> {
    throw readOnly('pushing', this.name);
  }

  async deleteManifest(): Promise<never> {
    throw readOnly('deleting', this.name);
  }

  getBlob(digest: string, opts: BlobGet): Promise<BlobAnswer> {
    return this.proxy.blobs.get(this.proxy.client(this.name.upstream), this.name, digest, opts.method, opts.range);
  }

  async deleteBlob(): Promise<never> {
    throw readOnly('deleting', this.name);
  }

  async upload(): Promise<UploadAnswer> {
    throw readOnly('pushing', this.name);
  }

  listTags(n: number | undefined, last: string | undefined): Promise<TagsAnswer> {
    return this.proxy.listings.tags(this.proxy.client(this.name.upstream), this.name, n, last);
  }

  referrers(digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
    return this.proxy.listings.referrers(this.proxy.client(this.name.upstream), this.name, digest, artifactType);
  }
}
