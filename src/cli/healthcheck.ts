/**
 * `regcache healthcheck`: exit 0 when the regcache on this machine answers GET /healthz with
 * 200, else 1 with one line on stderr. For the container image's HEALTHCHECK and similar
 * probes: it reads the same config and environment as `serve` (REGCACHE_CONFIG,
 * REGCACHE_LISTEN), so the probe follows the configured listener instead of a hard-coded
 * 127.0.0.1:5000.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseDuration } from '../config/units.js';
import type { Config } from '../config/types.js';
import { parseArgs, UsageError, type Command } from './args.js';
import { loadCommandConfig } from './overrides.js';

const HELP = `usage: regcache healthcheck [--config FILE] [--listen HOST:PORT] [--timeout DURATION]

Exits 0 when regcache answers GET /healthz on its main listener with 200, else 1 with the
reason on stderr. The listener comes from the same config and overrides as serve
(--listen, REGCACHE_LISTEN, then the config's listen); 0.0.0.0 and :: are probed on
loopback. With tls the probe uses https and does not verify the certificate (it checks the
process, not the certificate). Used by the container image's HEALTHCHECK.
  --timeout DURATION  give up after this long (default 3s)
`;

/** The base URL (no trailing slash) that reaches the main listener from this machine. */
export function mainUrl(cfg: Pick<Config, 'listen' | 'tls'>): string {
  let host = cfg.listen.host;
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  if (host.includes(':')) host = `[${host}]`;
  return `${cfg.tls ? 'https' : 'http'}://${host}:${cfg.listen.port}`;
}

/** The URL that reaches the main listener's /healthz from this machine. */
export function healthUrl(cfg: Pick<Config, 'listen' | 'tls'>): string {
  return `${mainUrl(cfg)}/healthz`;
}

function probe(url: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: 'GET', rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? undefined : `${url} answered ${res.statusCode}`));
      res.on('error', (err) => resolve(`${url}: ${err.message}`));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve(`${url}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.end();
  });
}

export const healthcheck: Command = async (argv, io) => {
  const args = parseArgs(argv, { values: ['config', 'listen', 'timeout'], booleans: ['help'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  if (args.positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const timeoutMs = parseDuration(args.flags.timeout ?? '3s');
  if (timeoutMs === undefined || timeoutMs <= 0) throw new UsageError(`--timeout must be a duration like 3s, not ${JSON.stringify(args.flags.timeout)}`);
  const { config } = loadCommandConfig(args.flags, io.env);
  const url = healthUrl(config);
  const problem = await probe(url, timeoutMs);
  if (problem !== undefined) {
    io.stderr(`regcache healthcheck: unhealthy: ${problem}\n`);
    return 1;
  }
  io.stdout(`regcache healthcheck: ok (${url})\n`);
  return 0;
};
