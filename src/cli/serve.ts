/**
 * `regcache serve`: loads the config (flags beat environment beat file), starts the app,
 * reloads upstreams on SIGHUP or when the config file changes, drains on SIGTERM/SIGINT
 * (a second signal exits at once).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { App } from '../app.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { configWarnings } from '../config/warnings.js';
import { ConfigError, parseHostPort } from '../config/validate.js';
import { createLogger } from '../log.js';
import { VERSION } from '../version.js';
import { configPath, parseArgs, type CliIo, type Command } from './args.js';

const HELP = `usage: regcache serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--log-level LEVEL] [--log-format json|pretty]

Runs the caching registry proxy.
  --config FILE       config file (env REGCACHE_CONFIG; default config/regcache.yaml)
  --listen HOST:PORT  main listener (env REGCACHE_LISTEN; config listen)
  --data DIR          data directory (env REGCACHE_DATA_DIR; config dataDir)
  --log-level LEVEL   fatal|error|warn|info|debug|trace (env REGCACHE_LOG_LEVEL; config logLevel)
  --log-format FMT    json|pretty (default: pretty on a terminal, json otherwise)

Signals: SIGHUP reloads the config (upstreams apply live); SIGTERM/SIGINT drain and exit.
`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Applies environment, then flag overrides to a loaded config. */
export function applyOverrides(cfg: Config, flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): Config {
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

export const serve: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'listen', 'data', 'log-level', 'log-format'], booleans: ['help'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const file = configPath(args.flags, io.env);
  const load = (): Config => applyOverrides(loadConfigFile(file, io.env), args.flags, io.env);
  let config: Config;
  try {
    config = load();
  } catch (err) {
    io.stderr(`regcache: ${(err as Error).message}\n`);
    return 1;
  }
  const log = createLogger(config.logLevel, config.logFormat);
  for (const w of configWarnings(config)) log.warn({ config: file }, w);
  const app = new App(config, { log });
  try {
    await app.start();
  } catch (err) {
    io.stderr(`regcache: ${(err as Error).message}\n`);
    log.flush();
    return 1;
  }
  log.info({
    version: VERSION, config: file, dataDir: config.dataDir,
    listeners: app.listeners.map((l) => `${l.name}=${l.host}:${l.port}`),
    upstreams: config.upstreams.map((u) => u.host), recovery: app.recovery,
  }, 'regcache started');

  let reloading = Promise.resolve();
  const reload = (why: string): void => {
    reloading = reloading.then(async () => {
      let next: Config;
      try {
        next = load();
      } catch (err) {
        log.error({ err: (err as Error).message, why }, 'config reload failed; keeping the running config');
        return;
      }
      const r = await app.reload(next);
      if (r.failed.length) log.error({ why, ...r }, 'config reloaded only in part: these changes did not apply');
      else log.info({ why, ...r }, 'config reloaded');
      if (r.restartNeeded.length) log.warn({ keys: r.restartNeeded }, 'these changed keys apply only after a restart');
    });
  };

  // Watch the directory: editors and `regcache mirror` replace the file by rename.
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  try {
    watcher = watch(dirname(file), (_event, name) => {
      if (name !== basename(file)) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => reload('file changed'), 200);
    });
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot watch the config file; use SIGHUP to reload');
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        log.flush();
        process.exit(130);
      }
      stopping = true;
      log.info({ signal, graceMs: config.server.shutdownGrace }, 'shutting down: draining in-flight requests');
      watcher?.close();
      clearTimeout(debounce);
      app.stop(app.currentConfig.server.shutdownGrace).then(
        () => {
          log.info('stopped');
          log.flush();
          resolve(0);
        },
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'error during shutdown');
          log.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => reload('SIGHUP'));
  });
};
