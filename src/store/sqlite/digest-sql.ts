/**
 * How the SQLite index interns the digests manifest references name (table `digest_ids`,
 * schema v3): one row per digest, keyed compactly, so a reference is two small integers.
 *
 * The key of a canonical digest (`sha256:` + 64 or `sha512:` + 128 lowercase hex, what
 * regcache verifies) is its raw hash bytes, a BLOB of 32 or 64 bytes, half the text; any
 * other string a manifest names (an upstream may write anything) stays TEXT, as is. The
 * mapping is one-to-one (a BLOB never equals a TEXT in SQLite) and both directions are
 * plain SQL expressions, so triggers need no application function and the sqlite3 shell can
 * read and write the index.
 *
 * Each helper takes an SQL expression and returns one; the expression is repeated, so pass
 * a column or NEW./OLD. reference, never a `?` (use digestId for parameters).
 */

/** SQL: the interned key of the digest text `x`. */
export function digestKey(x: string): string {
  // unhex() is NULL for anything but hex; lower() keeps the mapping one-to-one (no upper-case hex).
  return `(CASE WHEN length(${x}) = (CASE substr(${x}, 1, 7) WHEN 'sha256:' THEN 71 WHEN 'sha512:' THEN 135 END)
    AND substr(${x}, 8) = lower(substr(${x}, 8)) THEN coalesce(unhex(substr(${x}, 8)), ${x}) ELSE ${x} END)`;
}

/** SQL: the digest text of the interned key `k` (the inverse of digestKey). */
export function digestText(k: string): string {
  return `(CASE WHEN typeof(${k}) = 'blob' THEN iif(length(${k}) = 32, 'sha256:', 'sha512:') || lower(hex(${k})) ELSE ${k} END)`;
}

/** SQL: the id of the digest text `param` (a `?`, evaluated once), NULL when no reference names it. */
export function digestId(param: string): string {
  return `(SELECT id FROM digest_ids WHERE digest = (SELECT ${digestKey('x')} FROM (SELECT ${param} AS x)))`;
}
