/**
 * The OCI distribution grammar for repository names, tags and digests (spec v1.1).
 * Pure functions, no I/O.
 *   name:   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *   tag:    [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *   digest: sha256:<64 hex> | sha512:<128 hex> (lowercase hex)
 */

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const DIGEST_SHAPE_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Longest repository name accepted (distribution's limit). */
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** A digest regcache can verify: sha256 or sha512 with lowercase hex of the right length. */
export function isValidDigest(digest: string): boolean {
  return DIGEST_RE.test(digest);
}

/** Looks like `alg:encoded` (so a reference is meant as a digest rather than a tag). */
export function looksLikeDigest(ref: string): boolean {
  return ref.includes(':') && DIGEST_SHAPE_RE.test(ref);
}

export type DigestAlgorithm = 'sha256' | 'sha512';

export function digestAlgorithm(digest: string): DigestAlgorithm {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestHex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}
