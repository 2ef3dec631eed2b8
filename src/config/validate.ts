/**
 * Validation of a parsed config document, derived from the schema (schema/*.ts): unknown keys,
 * per-key parsers and defaults, then the rules between sections (ports, defaultUpstream).
 */
import { fail } from './errors.js';
import { portClaims, portClash } from './endpoint-rules.js';
import { checkKnown, mapping, parseKeys, parseSection, type Raw } from './schema/define.js';
import { root, SECTIONS, type AnySection } from './schema/index.js';
import { hostPort } from './schema/values.js';
import { checkSync } from './schema/sync.js';
import type { Config, HostPort } from './types.js';

export { ConfigError } from './errors.js';

export function parseHostPort(v: unknown, key: string): HostPort {
  return hostPort(v, key);
}

function parseMap(s: AnySection, raw: unknown): Raw[] {
  const entry = s.entry!;
  return Object.entries(mapping(raw, s.path)).map(([name, v]) => {
    const prefix = `${s.path}.${name}`;
    const problem = entry.nameProblem(name);
    if (problem) fail(prefix, problem);
    return { [entry.field]: name, ...(parseSection(s, v, prefix) as Raw) };
  });
}

/** Rules that span sections: every listener on its own port, defaultUpstream configured. */
function crossChecks(cfg: Config): void {
  const clash = portClash(portClaims(cfg));
  if (clash) {
    const [a, b] = clash;
    fail(b.key, `port ${b.port} is also ${a.key} (${a.host}:${a.port}); each listener needs its own port`);
  }
  if (cfg.replicas && cfg.storage.metadata !== 'postgres') fail('replicas', 'needs storage.metadata: postgres (the replicas coordinate through it)');
  // The metadata store keeps hosted repositories under this upstream name (store/metadata-store.ts HOSTED).
  if (cfg.upstreams.some((u) => u.host === 'hosted')) fail('upstreams.hosted', 'the name "hosted" is reserved for hosted repositories');
  if (cfg.defaultUpstream !== undefined && !cfg.upstreams.some((u) => u.host === cfg.defaultUpstream)) {
    fail('defaultUpstream', `${cfg.defaultUpstream} is not a configured upstream`);
  }
  checkSync(cfg);
}

/** Validates a parsed config document (env vars already expanded). */
export function validateConfig(rawDoc: unknown): Config {
  const raw = mapping(rawDoc, 'config');
  checkKnown(raw, [...Object.keys(root.keys), ...SECTIONS.filter((s) => s !== root).map((s) => s.path)], '');
  const cfg: Raw = {};
  for (const s of SECTIONS) {
    if (s.placement === 'root') Object.assign(cfg, parseKeys(s.keys, raw, ''));
    else if (s.placement === 'map') cfg[s.path] = parseMap(s, raw[s.path]);
    else if (s.placement === 'always' || (raw[s.path] !== undefined && raw[s.path] !== null)) cfg[s.path] = parseSection(s, raw[s.path]);
  }
  const config = cfg as unknown as Config;
  crossChecks(config);
  return config;
}
