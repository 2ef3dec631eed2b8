/** Which changed keys a running server cannot apply: derived from the schema's live|restart flags. */
import { joinKey, type Raw } from './schema/define.js';
import { SECTIONS, type AnySection } from './schema/index.js';
import type { Config } from './types.js';

function changed(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) !== JSON.stringify(b);
}

/** The values of one section in a config, keyed by their key-path prefix. */
function instances(s: AnySection, cfg: Config): Map<string, Raw | undefined> {
  const c = cfg as unknown as Raw;
  if (s.placement === 'root') return new Map([['', c]]);
  if (s.placement !== 'map') return new Map([[s.path, c[s.path] as Raw | undefined]]);
  const field = s.entry!.field;
  return new Map((c[s.path] as Raw[]).map((e) => [`${s.path}.${String(e[field])}`, e]));
}

/**
 * Key paths (`listen`, `server.idleTimeout`, `upstreams.quay.io.port`) whose value differs
 * between `prev` and `next` and that apply only after a restart, in schema order.
 */
export function restartNeededKeys(prev: Config, next: Config): string[] {
  const out: string[] = [];
  for (const s of SECTIONS) {
    const restartKeys = Object.entries(s.keys).filter(([, spec]) => spec.apply === 'restart').map(([k]) => k);
    if (restartKeys.length === 0) continue;
    const a = instances(s, prev);
    const b = instances(s, next);
    for (const prefix of new Set([...a.keys(), ...b.keys()])) {
      for (const k of restartKeys) if (changed(a.get(prefix)?.[k], b.get(prefix)?.[k])) out.push(joinKey(prefix, k));
    }
  }
  return out;
}
