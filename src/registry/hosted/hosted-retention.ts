/**
 * Hosted retention (off by default; per `hostedRepositories.<pattern>`), as a pure plan over
 * one repository's images:
 *  - `keepTags: N`: only the N most recently pushed tags stay;
 *  - `maxAge`: an image neither pulled nor pushed for this long goes, with its tags;
 *  - `untaggedGrace`: a manifest with no tag goes this long after it was pushed.
 * A manifest that a kept index of the repository lists, or whose `subject` is kept in the
 * repository (a signature, an SBOM), stays with it; when its parent or subject goes, it goes.
 * The plan unlinks from the repository; what nothing links any more is garbage (hosted-gc.ts).
 */
export interface HostedImage {
  digest: string;
  pushedAt: number;
  pulledAt: number;
  /** Tags of this repository naming it, with when each was pushed. */
  tags: Array<{ tag: string; at: number }>;
  /** Manifests of this repository that list it as a child. */
  parents: string[];
  subject?: string | undefined;
}

export interface HostedRetentionPolicy {
  maxAge?: number | undefined;
  keepTags?: number | undefined;
  untaggedGrace?: number | undefined;
}

export interface HostedRetentionPlan {
  tags: string[];
  digests: string[];
}

export function hasHostedRetention(p: HostedRetentionPolicy): boolean {
  return p.maxAge !== undefined || p.keepTags !== undefined || p.untaggedGrace !== undefined;
}

export function planHostedRetention(images: HostedImage[], policy: HostedRetentionPolicy, now: number): HostedRetentionPlan {
  const dropTags = new Set<string>();
  if (policy.keepTags !== undefined) {
    const all = images.flatMap((i) => i.tags).sort((a, b) => b.at - a.at || (a.tag < b.tag ? -1 : 1));
    for (const t of all.slice(policy.keepTags)) dropTags.add(t.tag);
  }
  const byDigest = new Map(images.map((i) => [i.digest, i]));
  const gone = new Set<string>();
  const lastUse = (i: HostedImage): number => Math.max(i.pushedAt, i.pulledAt, ...i.tags.map((t) => t.at));
  // Roots decide for themselves; dependants (children, referrers) follow what they hang on.
  const dependsOn = (i: HostedImage): string[] => [...i.parents, ...(i.subject !== undefined && byDigest.has(i.subject) ? [i.subject] : [])];
  for (const i of images) {
    if (dependsOn(i).length > 0) continue;
    if (policy.maxAge !== undefined && lastUse(i) < now - policy.maxAge) {
      gone.add(i.digest);
      for (const t of i.tags) dropTags.add(t.tag);
      continue;
    }
    const tagged = i.tags.some((t) => !dropTags.has(t.tag));
    if (!tagged && policy.untaggedGrace !== undefined && i.pushedAt < now - policy.untaggedGrace) gone.add(i.digest);
  }
  // Dependants go when everything they hang on goes (to a fixpoint: an index's child's referrer).
  for (let changed = true; changed;) {
    changed = false;
    for (const i of images) {
      const deps = dependsOn(i);
      if (gone.has(i.digest) || deps.length === 0 || !deps.every((d) => gone.has(d))) continue;
      if (i.tags.some((t) => !dropTags.has(t.tag))) continue;
      gone.add(i.digest);
      changed = true;
    }
  }
  return { tags: [...dropTags].sort(), digests: [...gone].sort() };
}
