/**
 * The `_catalog` listing: cached repositories (`<upstream>/<repo>`) and hosted ones (by the
 * full name the patterns match: `team/app`, `docker.io/myorg/app`) in one sorted list, paged
 * with n/last. Hosted repositories are stored under `hosted/<name>`, a contiguous range of
 * the store's catalog order, so the cached list skips that range and the two are merged.
 * A name both cached and hosted (an overlay) is listed once.
 */
import { HOSTED, type MetadataStore } from '../store/metadata-store.js';

const PREFIX = `${HOSTED}/`;
/** Sorts after every `hosted/<name>` (names are ASCII). */
const AFTER_HOSTED = `${PREFIX}\u{10ffff}`;

export async function catalogPage(meta: MetadataStore, last: string, n: number, upstream?: string): Promise<string[]> {
  const hostPrefix = upstream === undefined ? '' : `${upstream}/`;
  const cached = upstream === undefined
    ? [
      ...(await meta.catalog(last, n)).filter((r) => r < PREFIX),
      ...(await meta.catalog(last > AFTER_HOSTED ? last : AFTER_HOSTED, n)),
    ]
    : await meta.catalog(last, n, upstream);
  const hosted = (await meta.catalog(PREFIX + last, n, HOSTED))
    .map((r) => r.slice(PREFIX.length))
    .filter((r) => r.startsWith(hostPrefix) && r > last);
  return [...new Set([...cached, ...hosted])].sort().slice(0, n);
}
