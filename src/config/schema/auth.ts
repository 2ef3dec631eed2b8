/** `auth`: present means clients must log in. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { bool, str } from './values.js';

export const auth = section<NonNullable<Config['auth']>>('auth', 'optional', {
  htpasswd: key(str, { required: true, apply: 'restart', doc: 'bcrypt htpasswd file (`htpasswd -B`): clients must log in' }),
  anonymousPull: key(bool, { default: false, apply: 'restart', doc: 'pulls need no login (only `/metrics` does)' }),
  protectMetrics: key(bool, { default: true, apply: 'restart', doc: '`/metrics` needs a login' }),
  publicStatus: key(bool, { default: false, apply: 'restart', doc: 'the admin status (`/api/v1/status`) and the page at `/ui/` need no login; everything else of the admin API still does ([api.md](api.md))' }),
});
