/**
 * The system under test as a real process: `node dist/cli.js serve --config <tmp>/regcache.yaml`, started from the
 * repository root (build first: `npm run build`). Listens on 127.0.0.1:<free port> with a temp dataDir unless
 * the config says otherwise; stdout (pino JSON lines) and stderr are captured across restarts.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { spawnManaged, type ExitResult, type ManagedProcess } from './children.js';
import { waitForHttp, waitUntil } from './http-probe.js';
import { freePort } from './ports.js';
import { tmpDir } from './tmp.js';

/** Repository root (two levels above this file). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_PATH = join(REPO_ROOT, 'dist', 'cli.js');

export interface RegcacheOptions {
  /** The YAML config as an object; `listen`, `dataDir` and `logFormat: json` are filled in when absent. */
  config: Record<string, unknown>;
  /** Extra arguments after `serve --config FILE`. */
  args?: string[];
  /** Extra environment variables (over this process's environment). */
  env?: Record<string, string>;
  /** Readiness timeout (default 15 s). */
  startTimeoutMs?: number;
  /** Script run instead of dist/cli.js (the helpers' self-test uses a stand-in). */
  cliPath?: string;
}

export type LogLine = Record<string, unknown>;

export interface Regcache {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  dataDir: string;
  configPath: string;
  /** The config as written (with the filled-in defaults). */
  config: Record<string, unknown>;
  /** The current (or last) process. */
  readonly proc: ChildProcess;
  readonly running: boolean;
  /** Parsed JSON lines from stdout (non-JSON lines skipped), all runs unless currentRunOnly. */
  logs(opts?: { currentRunOnly?: boolean }): LogLine[];
  stdout(opts?: { currentRunOnly?: boolean }): string;
  stderr(opts?: { currentRunOnly?: boolean }): string;
  /** Waits until a log line (of any run) matches; returns it. */
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` (default SIGTERM), SIGKILL after graceMs (default 15 s); resolves with the exit status. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitResult>;
  /** SIGKILL and wait for the exit: a crash. */
  kill9(): Promise<void>;
  /** Stops (SIGTERM) if running, then starts again with the same port, config and dataDir. */
  restart(): Promise<void>;
}

function listenPort(listen: unknown): number | undefined {
  if (typeof listen === 'number') return listen;
  if (typeof listen !== 'string') return undefined;
  const m = /:(\d+)$/.exec(listen);
  return m ? Number(m[1]) : undefined;
}

function parseLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(t);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(v as LogLine);
    } catch {
      /* not a JSON line */
    }
  }
  return out;
}

export async function startRegcache(opts: RegcacheOptions): Promise<Regcache> {
  const cli = opts.cliPath ?? CLI_PATH;
  if (!existsSync(cli)) throw new Error(`${cli} does not exist: run \`npm run build\` before the integration tests`);
  const config: Record<string, unknown> = { ...opts.config };
  let port = listenPort(config.listen);
  // A port the helper chose may be taken by another test's server before regcache binds it
  // (test files run in parallel): regcache then exits (EADDRINUSE) and is started again on
  // another port. A port the test gave is its own business.
  let portRetries = port === undefined ? 2 : 0;
  if (port === undefined) {
    port = await freePort();
    config.listen = `127.0.0.1:${port}`;
  }
  if (config.dataDir === undefined) config.dataDir = tmpDir('regcache-data-');
  if (config.logFormat === undefined) config.logFormat = 'json';
  const dataDir = String(config.dataDir);
  const configPath = join(tmpDir('regcache-config-'), 'regcache.yaml');
  writeFileSync(configPath, stringify(config));
  let host = `127.0.0.1:${port}`;
  let url = `${config.tls ? 'https' : 'http'}://${host}`;
  const env = { ...process.env, ...opts.env };
  const argv = [cli, 'serve', '--config', configPath, ...(opts.args ?? [])];

  const runs: ManagedProcess[] = [];
  let current!: ManagedProcess;

  const start = async (): Promise<void> => {
    const p = spawnManaged(process.execPath, argv, { cwd: REPO_ROOT, env });
    current = p;
    runs.push(p);
    try {
      await waitForHttp(`${url}/v2/`, {
        timeoutMs: opts.startTimeoutMs ?? 15_000,
        abortIf: () =>
          p.running ? undefined : `regcache exited before it was ready (code ${p.exitResult?.code}, signal ${p.exitResult?.signal})`,
        ...(p.proc.pid !== undefined ? { answeredBy: p.proc.pid } : {}),
      });
    } catch (e) {
      await p.stop('SIGKILL');
      throw new Error(`regcache on ${host} did not start: ${(e as Error).message}\nstderr:\n${p.stderr()}\nstdout:\n${p.stdout().slice(-4000)}`);
    }
  };

  const pick = (o: { currentRunOnly?: boolean } | undefined): ManagedProcess[] => (o?.currentRunOnly ? [current] : runs);
  const stop = (signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<ExitResult> => current.stop(signal, graceMs);
  const logs = (o?: { currentRunOnly?: boolean }): LogLine[] => pick(o).flatMap((p) => parseLines(p.stdout()));

  for (;;) {
    try {
      await start();
      break;
    } catch (e) {
      if (portRetries-- <= 0 || !/EADDRINUSE/.test(current.stderr())) throw e;
      runs.length = 0; // the run that could not bind is not part of this regcache's logs
      port = await freePort();
      config.listen = `127.0.0.1:${port}`;
      writeFileSync(configPath, stringify(config));
      host = `127.0.0.1:${port}`;
      url = `${config.tls ? 'https' : 'http'}://${host}`;
    }
  }
  return {
    url,
    host,
    port,
    dataDir,
    configPath,
    config,
    get proc() {
      return current.proc;
    },
    get running() {
      return current.running;
    },
    logs,
    stdout: (o) => pick(o).map((p) => p.stdout()).join(''),
    stderr: (o) => pick(o).map((p) => p.stderr()).join(''),
    async waitForLog(pred, timeoutMs = 10_000) {
      let found: LogLine | undefined;
      await waitUntil(
        () => {
          found = logs().find(pred);
          return found !== undefined;
        },
        { timeoutMs, message: `no matching regcache log line within ${timeoutMs} ms` },
      );
      return found!;
    },
    stop,
    async kill9() {
      await current.stop('SIGKILL');
    },
    async restart() {
      if (current.running) await stop();
      await start();
    },
  };
}
