/**
 * `replicas`: this process is one of several replicas sharing `storage` (S3 + PostgreSQL).
 * Present: one upstream fetch per digest across the cluster (fill leases in PostgreSQL, peers
 * stream live fills over the internal listener), one leader for periodic retention.
 */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, hostPort, secret, str, upstreamUrl } from './values.js';

export const replicas = section<NonNullable<Config['replicas']>>('replicas', 'optional', {
  listen: key(hostPort, { required: true, apply: 'restart', doc: 'internal listener `HOST:PORT` where peers stream this replica\'s live fills (keep it off the public network)' }),
  advertise: key(upstreamUrl, { required: true, apply: 'restart', doc: 'URL peers reach `listen` at (`http://${POD_IP}:5001`)' }),
  secret: key(secret, { required: true, apply: 'restart', doc: 'shared by all replicas (use `${VAR}`); signs internal requests, never sent; never logged' }),
  id: key(str, { apply: 'restart', doc: 'this replica\'s name in leases and logs; unset: `advertise`' }),
  evictionGrace: key(duration, { default: '10m', apply: 'restart', doc: 'retention deletes a blob\'s object this long after its rows (another replica may still be streaming it)' }),
  leaseTTL: key(duration, { default: '10s', apply: 'restart', doc: 'a replica that stops renewing (dead) loses its fills and leadership after this; renewed every third of it' }),
});
