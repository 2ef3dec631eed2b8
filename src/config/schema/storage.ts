/**
 * `storage`: which backends hold blobs and metadata. The default (filesystem + SQLite under
 * `dataDir`) needs nothing else; several replicas share an S3 bucket and a PostgreSQL
 * database (docs/replicas.md). Credentials never go in the file: S3's come from the standard
 * AWS chain (AWS_ACCESS_KEY_ID, ...), PostgreSQL's from the URL's `${VAR}` or PGPASSWORD.
 */
import { fail } from '../errors.js';
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { bool, duration, oneOf, orOff, secret, str, upstreamUrl } from './values.js';

export const storage = section<Config['storage']>('storage', 'always', {
  blobs: key(oneOf(['filesystem', 's3'] as const), { default: 'filesystem', apply: 'restart', doc: '`filesystem` (under `dataDir`) or `s3` (an S3-compatible bucket; spools stay under `dataDir`)' }),
  metadata: key(oneOf(['sqlite', 'postgres'] as const), { default: 'sqlite', apply: 'restart', doc: '`sqlite` (under `dataDir`) or `postgres` (shared by replicas)' }),
  postgresUrl: key(secret, { apply: 'restart', doc: 'with `metadata: postgres`: `postgres://user:${PGPASS}@host:5432/db`; unset: the libpq environment (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...); never logged' }),
  s3Bucket: key(str, { apply: 'restart', doc: 'with `blobs: s3`: the bucket (created at start if missing and allowed)' }),
  s3Prefix: key(str, { apply: 'restart', doc: 'key prefix inside the bucket (`cluster-a/`; several clusters may share one); unset: none' }),
  s3Endpoint: key(upstreamUrl, { apply: 'restart', doc: 'endpoint of an S3-compatible store (`http://rgw:7480`); unset: AWS S3 for `s3Region`' }),
  s3Region: key(str, { default: 'us-east-1', apply: 'restart', doc: 'region to sign for' }),
  s3ForcePathStyle: key(bool, { default: false, apply: 'restart', doc: 'bucket in the path, not the host name (most S3-compatible stores)' }),
  s3Redirect: key(orOff(duration), { apply: 'restart', doc: 'with `blobs: s3`: answer GETs of stored blobs with a 307 to a presigned URL valid this long (clients must reach the store); `0`/unset: stream through regcache' }),
}, {
  check: (s, prefix) => {
    if (s.blobs === 's3' && !s.s3Bucket) fail(`${prefix}.s3Bucket`, 'required with blobs: s3');
  },
});
