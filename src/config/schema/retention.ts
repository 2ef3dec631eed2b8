/** `retention`: what the sweep removes. For every key, 0 means off. */
import type { Config } from '../types.js';
import { key, section } from './define.js';
import { duration, orOff, size } from './values.js';

export const retention = section<Config['retention']>('retention', 'always', {
  maxAge: key(orOff(duration), { apply: 'live', doc: 'content not pulled for this long is removed; `0`: off' }),
  maxSize: key(orOff(size), { apply: 'live', doc: 'above this, least recently pulled images are evicted; also enforced before each fill; `0`: off' }),
  interval: key(duration, { default: '10m', apply: 'live', doc: 'sweep period; `0`: no periodic sweep' }),
});
