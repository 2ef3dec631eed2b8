/**
 * `regcache containerd-config`: the node-side configuration that points containerd, k3s or
 * k3d at regcache, generated from the same config file regcache serves from.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, UsageError, type Command } from './args.js';
import { loadCommandConfig } from './overrides.js';
import { ConfigError } from '../config/validate.js';
import type { Config } from '../config/types.js';
import { writeFileAtomic } from '../config/edit.js';
import {
  DEFAULT_ENDPOINT_HOST, EndpointError, isLoopback, mainEndpoint, mirrorEndpoints, type GenerateOptions, type RoutingMode,
} from '../generate/endpoints.js';
import { renderRegistriesYaml } from '../generate/registries-yaml.js';
import { concatFiles, renderHostsToml } from '../generate/hosts-toml.js';

const USAGE = `usage: regcache containerd-config --format registries.yaml|hosts.toml [flags]

  --format registries.yaml   k3s/k3d: /etc/rancher/k3s/registries.yaml, or
                             k3d cluster create --registry-config FILE (printed to stdout)
  --format hosts.toml        containerd config_path tree: <DIR>/<registry host>/hosts.toml
  --config FILE              regcache config (default $REGCACHE_CONFIG, else config/regcache.yaml);
                             REGCACHE_LISTEN overrides its listen, as for serve
  --endpoint URL             regcache as the nodes reach it, no path
                             (default http://${DEFAULT_ENDPOINT_HOST}:<listen port>, https with tls)
  --mode ns|ports            ns (default): every host uses the main endpoint, routed by the
                             ?ns= parameter containerd adds. ports: a host with a port in the
                             config uses <endpoint host>:<port>; one without falls back to ns.
  --default                  also send every other registry through regcache ("*" / _default)
  --out DIR                  hosts.toml only: write the tree into DIR (else print each file
                             after a "# <path>" line)
  --ca-file PATH             CA (path on the node) that signed regcache's certificate
  --insecure-skip-verify     do not verify regcache's certificate
  --username U --password-file F
                             credentials for regcache's auth.htpasswd; the password is read
                             from F (trailing newline stripped) and written only into the output
`;

const FORMATS = ['registries.yaml', 'hosts.toml'] as const;
type Format = (typeof FORMATS)[number];

function readPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--password-file ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new UsageError(`--password-file ${file} is empty`);
  if (/[\r\n]/.test(password)) throw new UsageError(`--password-file ${file} holds more than one line`);
  return password;
}

export const containerdConfig: Command = async (argv, io) => {
  const args = parseArgs(argv, {
    values: ['config', 'format', 'endpoint', 'mode', 'out', 'ca-file', 'username', 'password-file'],
    booleans: ['help', 'default', 'insecure-skip-verify'],
  });
  if (args.booleans.has('help')) {
    io.stdout(USAGE);
    return 0;
  }
  if (args.positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const format = args.flags.format;
  if (format === undefined) throw new UsageError('--format registries.yaml|hosts.toml is required');
  if (!FORMATS.includes(format as Format)) throw new UsageError(`--format must be registries.yaml or hosts.toml, not ${JSON.stringify(format)}`);
  const mode = args.flags.mode ?? 'ns';
  if (mode !== 'ns' && mode !== 'ports') throw new UsageError(`--mode must be ns or ports, not ${JSON.stringify(mode)}`);
  const out = args.flags.out;
  if (out !== undefined && format !== 'hosts.toml') throw new UsageError('--out applies to --format hosts.toml; redirect stdout for registries.yaml');
  const caFile = args.flags['ca-file'];
  const insecure = args.booleans.has('insecure-skip-verify');
  if (caFile !== undefined && insecure) throw new UsageError('--ca-file and --insecure-skip-verify exclude each other');
  const username = args.flags.username;
  const passwordFile = args.flags['password-file'];
  if ((username === undefined) !== (passwordFile === undefined)) throw new UsageError('--username and --password-file go together');
  if (username !== undefined && (username === '' || username.includes(':'))) throw new UsageError('--username must be non-empty and without ":"');

  let file: string;
  let cfg: Config;
  try {
    ({ file, config: cfg } = loadCommandConfig(args.flags, io.env));
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`regcache containerd-config: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  let main: string;
  try {
    main = mainEndpoint(cfg, { endpoint: args.flags.endpoint });
  } catch (err) {
    if (err instanceof EndpointError) throw new UsageError(`--endpoint: ${err.message}`);
    throw err;
  }
  const https = main.startsWith('https:');
  if ((caFile !== undefined || insecure) && !https && !cfg.tls) {
    throw new UsageError('--ca-file/--insecure-skip-verify need an https endpoint (regcache serves plain http without tls)');
  }
  const opts: GenerateOptions = {
    endpoint: main,
    mode: mode as RoutingMode,
    includeDefault: args.booleans.has('default'),
    caFile,
    insecureSkipVerify: insecure,
    auth: username !== undefined ? { username, password: readPassword(passwordFile!) } : undefined,
  };

  // Warnings go to stderr so stdout stays a clean file.
  const warn = (s: string): void => io.stderr(`regcache containerd-config: warning: ${s}\n`);
  const noPort = mirrorEndpoints(cfg, opts).filter((e) => e.fallback).map((e) => e.host);
  if (noPort.length) warn(`no port in ${file} for ${noPort.join(', ')}: in ports mode they use the main endpoint (ns routing)`);
  if (cfg.auth && !cfg.auth.anonymousPull && !opts.auth) warn('regcache requires authentication (auth.htpasswd): pass --username and --password-file');
  if (cfg.tls && !https) warn(`regcache serves TLS but the endpoint ${main} is http`);
  if (isLoopback(cfg.listen.host) && !isLoopback(new URL(main).hostname)) {
    warn(`regcache listens on ${cfg.listen.host} only; nodes in containers or other machines cannot reach it (listen on 0.0.0.0)`);
  }
  if (cfg.upstreams.length === 0 && !opts.includeDefault) warn(`no upstreams in ${file}: the output routes nothing (add --default or regcache mirror add)`);

  if (format === 'registries.yaml') {
    io.stdout(renderRegistriesYaml(cfg, opts));
    return 0;
  }
  const files = renderHostsToml(cfg, opts);
  if (out === undefined) {
    io.stdout(concatFiles(files));
    return 0;
  }
  // With credentials inside, only the owner (root, for containerd) may read the files.
  const fileMode = opts.auth ? 0o600 : 0o644;
  for (const f of files) {
    const path = join(out, ...f.path.split('/'));
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, f.content, { mode: fileMode });
    io.stdout(`wrote ${path}\n`);
  }
  io.stdout(`set containerd's registry config_path to ${JSON.stringify(resolve(out))} (see docs/containerd.md), or test with: ctr images pull --hosts-dir ${resolve(out)} IMAGE\n`);
  return 0;
};
