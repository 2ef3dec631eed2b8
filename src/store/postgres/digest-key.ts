/**
 * The key under which the PostgreSQL store interns a digest a reference names (table
 * digest_ids, schema v3): a tag byte and the raw hash for what regcache verifies (1: sha256,
 * 2: sha512, lower-case hex), else 0 and the string's UTF-8 bytes. SQL has the same mapping as
 * regcache_digest_key (triggers, queries by one digest); a manifest's references are keyed
 * here, once each, instead of by the database twice per reference. They agree: tested in
 * test/integration/postgres-metadata-store.test.ts.
 */
import { digestAlgorithm, digestHex, isValidDigest } from '../../protocol/grammar.js';

export function digestKey(digest: string): Buffer {
  if (!isValidDigest(digest)) return Buffer.concat([Buffer.of(0), Buffer.from(digest, 'utf8')]);
  return Buffer.concat([Buffer.of(digestAlgorithm(digest) === 'sha256' ? 1 : 2), Buffer.from(digestHex(digest), 'hex')]);
}
