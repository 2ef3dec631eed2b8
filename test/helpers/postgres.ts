/**
 * A throwaway PostgreSQL server for tests: Debian's postgresql binaries, initdb into a temp dir, `postgres` on a
 * free loopback port (no other address, its unix socket inside the temp dir), stopped by PID. Durability is
 * switched off (fsync, synchronous_commit, full_page_writes): these clusters live for one test file.
 *
 * PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user (the package creates
 * it) through `setpriv`, which execs, so the PID tracked is the server's own.
 */
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnManaged, runChecked, type ManagedProcess } from './children.js';
import { freePort } from './ports.js';
import { removeTmpDir, tmpDir } from './tmp.js';

export interface Postgres {
  host: string;
  port: number;
  user: string;
  /** A connection URL for `database` (default `postgres`). */
  url(database?: string): string;
  /** Creates an empty database with a fresh name and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL through psql as the superuser (for test set-up). */
  sql(query: string, database?: string): Promise<string>;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/** Directory of the newest installed PostgreSQL's binaries (Debian installs them per major version). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  throw new Error('missing tools: postgres. Install them with: apt-get install -y postgresql');
}

/** Runs a command as the `postgres` user when we are root. */
function asServerUser(bin: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [bin, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', bin, ...args]];
}

let dbCounter = 0;

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBinDir();
  const dir = tmpDir('regcache-pg-');
  const data = join(dir, 'data');
  const root = process.getuid?.() === 0;
  const user = root ? 'postgres' : (process.env.USER ?? 'postgres');
  if (root) {
    // The data directory must belong to the server's user (uid/gid looked up, not assumed).
    const uid = Number((await runChecked('id', ['-u', 'postgres'])).trim());
    const gid = Number((await runChecked('id', ['-g', 'postgres'])).trim());
    chownSync(dir, uid, gid);
  }
  const [initCmd, initArgs] = asServerUser(join(bin, 'initdb'), ['-D', data, '--auth=trust', '--no-sync', '-U', user, '-E', 'UTF8', '--locale=C']);
  await runChecked(initCmd, initArgs, { timeoutMs: 60_000 });
  const port = await freePort();
  const [cmd, args] = asServerUser(join(bin, 'postgres'), [
    '-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', dir,
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
    '-c', 'max_connections=200', '-c', 'shared_buffers=32MB', '-c', 'log_min_messages=warning',
  ]);
  const proc = spawnManaged(cmd, args);
  const psql = join(bin, 'psql');
  const url = (database = 'postgres'): string => `postgres://${user}@127.0.0.1:${port}/${database}`;
  const sql = (query: string, database = 'postgres'): Promise<string> =>
    runChecked(psql, ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', database, '-c', query], { timeoutMs: 30_000 });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!proc.running) {
      await removeTmpDir(dir);
      throw new Error(`postgres exited during start-up: ${proc.stderr().trim()}`);
    }
    try {
      await sql('SELECT 1');
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await proc.stop('SIGKILL');
        await removeTmpDir(dir);
        throw new Error(`postgres did not answer within 30 s: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    host: '127.0.0.1',
    port,
    user,
    url,
    sql,
    process: proc,
    async createDatabase(prefix = 'test') {
      const name = `${prefix}_${process.pid}_${++dbCounter}`;
      await sql(`CREATE DATABASE ${name}`);
      return url(name);
    },
    async stop() {
      // SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, no recovery needed.
      await proc.stop('SIGINT', 10_000);
      await removeTmpDir(dir);
    },
  };
}
