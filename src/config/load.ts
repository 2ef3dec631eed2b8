/** Reads a YAML config file, expands ${VAR} from the environment, validates it. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Config } from './types.js';
import { ConfigError, validateConfig } from './validate.js';

/** Replaces `${NAME}` in every string scalar; a missing variable is an error naming the key. */
export function expandEnv(value: unknown, env: NodeJS.ProcessEnv, key = ''): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) throw new ConfigError(`${key || 'config'}: environment variable ${name} is not set`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${key}[${i}]`));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = expandEnv(v, env, key ? `${key}.${k}` : k);
    return out;
  }
  return value;
}

export function parseConfigText(text: string, env: NodeJS.ProcessEnv, file = 'config'): Config {
  let doc: unknown;
  try {
    doc = parse(text, { strict: true, uniqueKeys: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new ConfigError(`${file}: malformed YAML: ${msg}`);
  }
  return validateConfig(expandEnv(doc ?? {}, env));
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfigText(text, env, file);
}
