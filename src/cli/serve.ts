/**
 * `regcache serve`: loads the config (flags beat environment beat file), checks the data
 * directory is writable and takes its lock, starts the app, reloads upstreams on SIGHUP or
 * when the config file changes, drains on SIGTERM/SIGINT (a second signal exits at once).
 */
import { App } from '../app.js';
import type { Config } from '../config/types.js';
import { configWarnings } from '../config/warnings.js';
import { createLogger } from '../log.js';
import { checkDataDirWritable } from '../store/fs/data-dir-check.js';
import { acquireDataDirLock, type DataDirLock } from '../store/fs/data-dir-lock.js';
import { VERSION } from '../version.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { isSingleFileMount, watchConfigFile } from './config-watch.js';
import { loadCommandConfig } from './overrides.js';
import { currentUser } from './run-as.js';

const HELP = `usage: regcache serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--log-level LEVEL] [--log-format json|pretty]

Runs the caching registry proxy.
  --config FILE       config file (env REGCACHE_CONFIG; default config/regcache.yaml)
  --listen HOST:PORT  main listener (env REGCACHE_LISTEN; config listen)
  --data DIR          data directory (env REGCACHE_DATA_DIR; config dataDir)
  --log-level LEVEL   fatal|error|warn|info|debug|trace (env REGCACHE_LOG_LEVEL; config logLevel)
  --log-format FMT    json|pretty (default: pretty on a terminal, json otherwise)

The data directory must be writable by the user serve runs as, and is locked: a second
serve, gc or fsck --repair on it is refused, naming this process's PID.
Signals: SIGHUP reloads the config (upstreams apply live); SIGTERM/SIGINT drain and exit.
`;

export const serve: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'listen', 'data', 'log-level', 'log-format'], booleans: ['help'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const load = (): { file: string; config: Config } => loadCommandConfig(args.flags, io.env);
  let file: string;
  let config: Config;
  let lock: DataDirLock;
  try {
    ({ file, config } = load());
    // Before the app opens anything: a clear refusal instead of a half-working start.
    checkDataDirWritable(config.dataDir, currentUser());
    lock = acquireDataDirLock(config.dataDir, 'serve', process.pid);
  } catch (err) {
    io.stderr(`regcache: ${(err as Error).message}\n`);
    return 1;
  }
  const log = createLogger(config.logLevel, config.logFormat, process.stdout, process.pid);
  for (const w of configWarnings(config)) log.warn({ config: file }, w);
  let app: App;
  try {
    app = new App(config, { log });
    await app.start();
  } catch (err) {
    io.stderr(`regcache: ${(err as Error).message}\n`);
    log.flush();
    lock.release();
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
        next = load().config;
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

  const watcher = watchConfigFile(file, () => reload('file changed'), (msg) => log.warn(msg));
  if (isSingleFileMount(file)) {
    log.warn({ config: file }, 'the config file is mounted on its own: a replacement by rename (editors, regcache mirror) is not visible here; mount its directory instead (see README, Container image). SIGHUP re-reads it.');
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
      watcher.close();
      app.stop(app.currentConfig.server.shutdownGrace).then(
        () => {
          lock.release();
          log.info('stopped');
          log.flush();
          resolve(0);
        },
        (err: unknown) => {
          lock.release();
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
