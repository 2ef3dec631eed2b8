/**
 * Image references as the copy command writes them: `REGISTRY/REPO[:TAG|@DIGEST]`, and
 * `REGISTRY/REPO:*` for every tag. Pure. The registry is always written out: a copy names
 * where bytes go, so a reference without a registry host is refused rather than silently
 * meaning Docker Hub. On docker.io a one-component repository is an official image
 * (`docker.io/nginx` is `library/nginx`), as every Docker client reads it.
 */
import { isValidDigest, isValidName, isValidTag } from '../protocol/grammar.js';

export interface ImageRef {
  /** `host[:port]`, lowercase; `docker.io` for Docker Hub (index.docker.io and registry-1.docker.io are folded into it). */
  registry: string;
  repo: string;
  tag?: string;
  digest?: string;
  /** `repo:*`: every tag. */
  allTags?: boolean;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** A first path component that is a registry host (as Docker clients decide it). */
function isRegistryHost(part: string): boolean {
  return part.includes('.') || part.includes(':') || part === 'localhost';
}

export class ReferenceError extends Error {
  override name = 'ReferenceError';
}

export function parseImageRef(text: string): ImageRef {
  const raw = text.trim();
  if (raw === '') throw new ReferenceError('empty image reference');
  const slash = raw.indexOf('/');
  if (slash === -1 || !isRegistryHost(raw.slice(0, slash))) {
    throw new ReferenceError(`${JSON.stringify(raw)} names no registry: write it as REGISTRY/REPOSITORY[:TAG] (e.g. docker.io/${raw})`);
  }
  let registry = raw.slice(0, slash).toLowerCase();
  let rest = raw.slice(slash + 1);
  const out: Partial<ImageRef> = {};
  const at = rest.indexOf('@');
  if (at !== -1) {
    const digest = rest.slice(at + 1);
    if (!isValidDigest(digest)) throw new ReferenceError(`${JSON.stringify(raw)}: invalid digest ${JSON.stringify(digest)}`);
    out.digest = digest;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    const tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (out.digest !== undefined) throw new ReferenceError(`${JSON.stringify(raw)}: give a tag or a digest, not both`);
    if (tag === '*') out.allTags = true;
    else if (!isValidTag(tag)) throw new ReferenceError(`${JSON.stringify(raw)}: invalid tag ${JSON.stringify(tag)}`);
    else out.tag = tag;
  }
  if (DOCKER_HUB_ALIASES.has(registry)) {
    registry = 'docker.io';
    if (!rest.includes('/')) rest = `library/${rest}`;
  }
  if (!isValidName(rest)) throw new ReferenceError(`${JSON.stringify(raw)}: invalid repository name ${JSON.stringify(rest)}`);
  return { registry, repo: rest, ...out };
}

/** The repository part: `registry/repo`. */
export function repoKey(ref: Pick<ImageRef, 'registry' | 'repo'>): string {
  return `${ref.registry}/${ref.repo}`;
}

export function formatRef(ref: ImageRef): string {
  if (ref.digest) return `${repoKey(ref)}@${ref.digest}`;
  if (ref.allTags) return `${repoKey(ref)}:*`;
  return ref.tag ? `${repoKey(ref)}:${ref.tag}` : repoKey(ref);
}
