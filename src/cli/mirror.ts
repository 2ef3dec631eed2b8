/**
 * `regcache mirror list|add|remove`: the upstream hosts in the config file, and the address a
 * cluster node uses for each. add/remove edit the YAML in place (comments and order kept)
 * and replace it atomically; an invalid config is reported and never overwritten.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, configPath, UsageError, type CliIo, type Command } from './args.js';
import { loadCommandConfig } from './overrides.js';
import { ConfigError } from '../config/errors.js';
import { EditError, planAddOnHost, planRemove, writeFileAtomic } from '../config/edit.js';
import { portIsFree, type PortProbe } from '../config/port-probe.js';
import { mirrorEndpoints, DEFAULT_ENDPOINT_HOST, EndpointError, type MirrorEndpoint } from '../generate/endpoints.js';

const USAGE = `usage: regcache mirror <list|add|remove> [flags]

  list   [--config FILE] [--endpoint-host HOST]
         Each upstream with its URL, dedicated port, and the endpoint a cluster node uses:
         http://${DEFAULT_ENDPOINT_HOST}:<port> for a host with a port, else the main
         listener routed by ns. --endpoint-host replaces ${DEFAULT_ENDPOINT_HOST}.
  add    --host HOST [--url URL] [--port N | --no-port] [--config FILE]
         Add an upstream. Without --url: the registry's real API address (docker.io ->
         https://registry-1.docker.io, others https://HOST). Without --port: the first
         free port from 6000 not held by another upstream, listen or metrics.listen,
         nor by another process on listen's host. A given --port is checked the same way.
  remove --host HOST [--config FILE]
         Remove an upstream. Its cached content stays until retention removes it.

The config file is --config, else $REGCACHE_CONFIG, else config/regcache.yaml.
A running \`regcache serve\` applies add/remove within a second (it watches the file; SIGHUP
also reloads), without dropping in-flight pulls. Regenerate the node configuration
(regcache containerd-config) when you use per-host ports.
`;

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new EditError(`config file ${file} does not exist; create it first (config/regcache.yaml is a starting point) or pass --config FILE`);
    }
    throw new EditError(`${file}: cannot read config: ${code ?? (err as Error).message}`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function routingNote(e: MirrorEndpoint): string {
  return e.routing === 'port' ? 'port' : 'ns';
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { values: ['config', 'endpoint-host'], booleans: ['help'] });
  if (args.booleans.has('help')) return help(io);
  if (args.positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const { file, config: cfg } = loadCommandConfig(args.flags, io.env);
  const entries = mirrorEndpoints(cfg, { endpointHost: args.flags['endpoint-host'], mode: 'ports' });
  if (entries.length === 0) {
    io.stdout(`no upstreams in ${file}; add one with: regcache mirror add --host HOST\n`);
    return 0;
  }
  const rows = [['HOST', 'UPSTREAM', 'PORT', 'ENDPOINT', 'ROUTING']];
  for (const e of entries) {
    rows.push([e.host + (e.isDefault ? ' (default)' : ''), e.upstreamUrl, e.port === undefined ? '-' : String(e.port), e.endpoint, routingNote(e)]);
  }
  io.stdout(table(rows));
  return 0;
}

function hostFlag(args: ReturnType<typeof parseArgs>): string {
  if (args.positionals.length > 1 || (args.positionals.length === 1 && args.flags.host !== undefined)) {
    throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals.at(-1))}`);
  }
  const host = args.flags.host ?? args.positionals[0];
  if (host === undefined || host === '') throw new UsageError('--host HOST is required');
  return host;
}

async function add(argv: string[], io: CliIo, probe: PortProbe): Promise<number> {
  const args = parseArgs(argv, { values: ['config', 'host', 'url', 'port'], booleans: ['help', 'no-port'] });
  if (args.booleans.has('help')) return help(io);
  const host = hostFlag(args);
  let port: number | undefined;
  if (args.flags.port !== undefined) {
    if (!/^\d{1,5}$/.test(args.flags.port)) throw new UsageError(`--port must be a port number 1-65535, not ${JSON.stringify(args.flags.port)}`);
    port = Number(args.flags.port);
    if (port < 1 || port > 65535) throw new UsageError(`--port must be a port number 1-65535, not ${port}`);
  }
  const file = configPath(args.flags, io.env);
  const req = { host, url: args.flags.url, port, noPort: args.booleans.has('no-port') };
  const plan = await planAddOnHost(readConfigText(file), io.env, req, file, probe);
  writeFileAtomic(file, plan.text);
  const where = plan.upstream.port === undefined ? 'no dedicated port (routed by ns)' : `port ${plan.upstream.port}`;
  io.stdout(`added ${host} -> ${plan.upstream.url}, ${where}, to ${file}\n`);
  io.stdout('a running regcache serve picks this up within a second; regenerate the node configuration (regcache containerd-config) if nodes use per-host ports.\n');
  return 0;
}

async function remove(argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv, { values: ['config', 'host'], booleans: ['help'] });
  if (args.booleans.has('help')) return help(io);
  const host = hostFlag(args);
  const file = configPath(args.flags, io.env);
  const plan = planRemove(readConfigText(file), io.env, host, file);
  writeFileAtomic(file, plan.text);
  io.stdout(`removed ${host} from ${file}\n`);
  io.stdout('its cached content stays on disk until retention removes it; a running regcache serve stops serving it within a second.\n');
  return 0;
}

function help(io: CliIo): number {
  io.stdout(USAGE);
  return 0;
}

/** `regcache mirror`; `probe` checks that a port is free on this machine (tests replace it). */
export function mirrorCommand(probe: PortProbe = portIsFree): Command {
  const subcommands: Record<string, (argv: string[], io: CliIo) => Promise<number>> = {
    list, add: (argv, io) => add(argv, io, probe), remove,
  };
  return async (argv, io) => {
    const [sub, ...rest] = argv;
    if (sub === '--help' || sub === '-h' || sub === 'help') return help(io);
    if (sub === undefined) throw new UsageError('missing subcommand: list, add or remove');
    const run = subcommands[sub];
    if (!run) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}: use list, add or remove`);
    try {
      return await run(rest, io);
    } catch (err) {
      if (err instanceof EditError || err instanceof EndpointError || err instanceof ConfigError) {
        io.stderr(`regcache mirror ${sub}: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  };
}

export const mirror: Command = mirrorCommand();
