/**
 * The platform filter of a sync job: which children of a multi-platform index to fetch.
 * The index itself is always kept byte for byte (its digest stays the upstream's); only
 * the children fetched ahead of time are chosen here. `linux/arm64` takes every variant of
 * arm64, `linux/arm64/v8` only that one. Children without a platform, or with
 * `unknown/unknown` (build attestations), are left out when a filter is set. Pure.
 */

export interface IndexChild {
  digest: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** The children of an index body (invalid entries skipped). */
export function indexChildren(body: Buffer): IndexChild[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const list = (doc as { manifests?: unknown })?.manifests;
  if (!Array.isArray(list)) return [];
  const out: IndexChild[] = [];
  for (const m of list as Array<{ digest?: unknown; platform?: unknown }>) {
    if (typeof m?.digest !== 'string') continue;
    const c: IndexChild = { digest: m.digest };
    if (m.platform && typeof m.platform === 'object') c.platform = m.platform as IndexChild['platform'] & object;
    out.push(c);
  }
  return out;
}

export function platformMatches(filter: readonly string[], p: IndexChild['platform']): boolean {
  if (filter.length === 0) return true;
  if (!p?.os || !p.architecture) return false;
  return filter.some((f) => {
    const [os, arch, variant] = f.split('/');
    return os === p.os && arch === p.architecture && (variant === undefined || variant === p.variant);
  });
}

/** The digests of the children to fetch. */
export function selectChildren(body: Buffer, filter: readonly string[]): string[] {
  return indexChildren(body).filter((c) => platformMatches(filter, c.platform)).map((c) => c.digest);
}
