/** `tls`: present means the listeners serve HTTPS. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { str } from './values.js';

export const tls = section<NonNullable<Config['tls']>>('tls', 'optional', {
  cert: key(str, { required: true, apply: 'restart', doc: 'PEM certificate chain; with `tls.key`: serve HTTPS with h2 and HTTP/1.1 fallback' }),
  key: key(str, { required: true, apply: 'restart', doc: 'PEM private key of `tls.cert`' }),
});
