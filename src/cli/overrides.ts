/**
 * The one way every command gets its config: the file from --config, else REGCACHE_CONFIG,
 * else the default; then environment overrides (REGCACHE_LISTEN, REGCACHE_DATA_DIR,
 * REGCACHE_LOG_LEVEL), then flags. Shared so that `serve`, `gc`, `fsck`, `healthcheck`,
 * `containerd-config` and `mirror` can never disagree about where regcache listens or keeps
 * its data.
 */
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { ConfigError, parseHostPort } from '../config/validate.js';
import { configPath, type ParsedArgs } from './args.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Applies environment, then flag overrides to a loaded config. A command without a flag just gets the environment. */
export function applyOverrides(cfg: Config, flags: ParsedArgs['flags'], env: NodeJS.ProcessEnv): Config {
  const out: Config = { ...cfg };
  const pick = (flag: string, envName: string): [string, string] | undefined => {
    if (flags[flag] !== undefined) return [flags[flag]!, `--${flag}`];
    if (env[envName] !== undefined && env[envName] !== '') return [env[envName]!, envName];
    return undefined;
  };
  const listen = pick('listen', 'REGCACHE_LISTEN');
  if (listen) out.listen = parseHostPort(listen[0], listen[1]);
  const data = pick('data', 'REGCACHE_DATA_DIR');
  if (data) out.dataDir = data[0];
  const level = pick('log-level', 'REGCACHE_LOG_LEVEL');
  if (level) {
    if (!LOG_LEVELS.includes(level[0])) throw new ConfigError(`${level[1]}: must be one of ${LOG_LEVELS.join(', ')}`);
    out.logLevel = level[0];
  }
  const fmt = flags['log-format'];
  if (fmt !== undefined) {
    if (fmt !== 'json' && fmt !== 'pretty') throw new ConfigError('--log-format: must be json or pretty');
    out.logFormat = fmt;
  }
  return out;
}

export interface CommandConfig {
  /** The config file that was read. */
  file: string;
  config: Config;
}

/** Reads the command's config file and applies the overrides. Throws ConfigError naming the file or key. */
export function loadCommandConfig(flags: ParsedArgs['flags'], env: NodeJS.ProcessEnv): CommandConfig {
  const file = configPath(flags, env);
  return { file, config: applyOverrides(loadConfigFile(file, env), flags, env) };
}
