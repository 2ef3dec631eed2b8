/** Valid but probably unintended configurations, logged as warnings at start. */
import type { Config } from './types.js';

export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  // Hosted repositories, when they exist, also count as something to serve.
  if (config.upstreams.length === 0) {
    out.push('no upstreams configured: every pull answers 404 NAME_UNKNOWN; add one with `regcache mirror add --host HOST` or under upstreams:');
  }
  for (const u of config.upstreams) {
    if (u.username !== undefined && u.url.startsWith('http://')) {
      out.push(`upstreams.${u.host}: credentials are sent to ${u.url} over plain http://`);
    }
  }
  return out;
}
