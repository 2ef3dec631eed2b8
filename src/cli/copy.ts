/**
 * `regcache copy [SRC DST [DST...]]... [-f FILE]... [flags]`: copies images to other
 * registries from mappings, oc image mirror style (src/transfer/ does the work). Exit 0
 * when every image was copied (or already there), 1 when some failed, 2 for usage errors
 * (bad flags, mapping errors, overlapping destinations), before anything is copied.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { AuthFileError, readAuthFile } from '../transfer/auth-file.js';
import { MappingError, parseMappingArgs, parseMappingText, type Mapping } from '../transfer/mapping.js';
import { parseOsFilter, parsePlatformList, PlatformFilterError, type PlatformFilter } from '../transfer/platforms.js';
import { RegistrySet } from '../transfer/registries.js';
import { runCopy } from '../transfer/run-copy.js';
import { DEFAULT_CONFIG, parseArgs, UsageError, type CliIo, type Command } from './args.js';
import { createOutput, type OutputFormat } from './copy-output.js';
import { loadCommandConfig } from './overrides.js';

const HELP = `usage: regcache copy [SRC DST [DST...]]... [-f FILE]... [flags]

Copies images between registries. A mapping is SRC DST [DST...] or SRC=DST, on the
command line or one per line in mapping files (-f; '#' comments). References are
REGISTRY/REPOSITORY[:TAG|@DIGEST]; a source REPO:* (or a repository without tag) copies
every tag and needs repositories as destinations. Manifests are copied byte for byte, so
digests are kept; blobs the destination has are not sent; blobs it has in another
repository are mounted. See docs/copy.md.

  -f, --filename FILE      a mapping file; repeatable; '-' reads stdin
  --dry-run                print the plan (digests, blobs to send and already there, bytes); write nothing
  --continue-on-error      copy the rest after a failure (exit 1 at the end)
  --skip-missing           a source that does not exist is skipped, not a failure
  --force                  send blobs and manifests even when the destination has them
  --platforms LIST         only these platforms of an index: linux/amd64,linux/arm64/v8
  --filter-by-os REGEX     only the platforms whose os/arch[/variant] matches REGEX (whole string)
  --keep-manifest-list     with a platform filter, keep the source index (and its digest) where
                           the destination accepts it without the other platforms
  --max-per-registry N     images and blob transfers at once per destination registry (default 6)
  --max-registries N       destination registries worked on at once (default 4)
  --registry-config FILE   credentials file (default $REGISTRY_AUTH_FILE, else ~/.docker/config.json)
  --insecure HOST          speak plain HTTP to HOST; repeatable, or comma-separated
  --config FILE            regcache config whose upstreams' URLs and credentials apply to sources
  --output text|json       lines per image and a summary (default text); a terminal also gets a live display
`;

const VALUE_FLAGS = ['platforms', 'filter-by-os', 'max-per-registry', 'max-registries', 'registry-config', 'output', 'config'];
const BOOL_FLAGS = ['help', 'dry-run', 'continue-on-error', 'skip-missing', 'force', 'keep-manifest-list'];

/** Pulls the repeatable flags (-f/--filename, --insecure) out of argv. */
function takeRepeated(argv: string[]): { rest: string[]; files: string[]; insecure: string[] } {
  const rest: string[] = [];
  const files: string[] = [];
  const insecure: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^(-f|--filename|--insecure)(?:=(.*))?$/.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new UsageError(`${m[1]} needs a value`);
    if (m[1] === '--insecure') insecure.push(...value.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''));
    else files.push(value);
  }
  return { rest, files, insecure };
}

function positiveInt(v: string | undefined, flag: string, d: number): number {
  if (v === undefined) return d;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 256) throw new UsageError(`--${flag} must be a whole number from 1 to 256`);
  return Number(v);
}

async function readMappings(files: string[], positionals: string[], io: CliIo): Promise<Mapping[]> {
  const out: Mapping[] = [];
  const problems: MappingError['problems'] = [];
  const collect = (fn: () => Mapping[]): void => {
    try {
      out.push(...fn());
    } catch (err) {
      if (!(err instanceof MappingError)) throw err;
      problems.push(...err.problems);
    }
  };
  if (positionals.length) collect(() => parseMappingArgs(positionals));
  for (const f of files) {
    let text: string;
    if (f === '-') {
      if (!io.readStdin) throw new UsageError('-f -: no standard input');
      text = await io.readStdin();
    } else {
      try {
        text = await readFile(f, 'utf8');
      } catch (err) {
        throw new UsageError(`-f ${f}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
      }
    }
    collect(() => parseMappingText(text, f === '-' ? 'stdin' : f));
  }
  if (problems.length) throw new MappingError(problems);
  return out;
}

/** regcache's config, when one is given or the default exists. */
function regcacheConfig(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): Config | undefined {
  const file = flags.config ?? (env.REGCACHE_CONFIG || undefined) ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  if (file === undefined) return undefined;
  return loadCommandConfig({ ...flags, config: file }, env).config;
}

export const copy: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const { rest, files, insecure } = takeRepeated(argv);
  const args = parseArgs(rest, { values: VALUE_FLAGS, booleans: BOOL_FLAGS });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const f = args.flags;
  const output = (f.output ?? 'text') as OutputFormat;
  if (output !== 'text' && output !== 'json') throw new UsageError('--output must be text or json');
  const unknownShort = args.positionals.find((p) => /^-[^-]/.test(p));
  if (unknownShort) throw new UsageError(`unknown flag ${unknownShort}`);
  if (f.platforms !== undefined && f['filter-by-os'] !== undefined) throw new UsageError('give --platforms or --filter-by-os, not both');
  if (args.booleans.has('keep-manifest-list') && f.platforms === undefined && f['filter-by-os'] === undefined) {
    throw new UsageError('--keep-manifest-list needs --platforms or --filter-by-os (without a filter the whole index is always kept)');
  }
  let platforms: PlatformFilter | undefined;
  let mappings: Mapping[];
  let registries: RegistrySet;
  try {
    if (f.platforms !== undefined) platforms = parsePlatformList(f.platforms);
    if (f['filter-by-os'] !== undefined) platforms = parseOsFilter(f['filter-by-os']);
    mappings = await readMappings(files, args.positionals, io);
    if (mappings.length === 0) throw new UsageError('no mappings: give SRC DST on the command line or -f FILE');
    const config = regcacheConfig(f, io.env);
    registries = new RegistrySet({ auth: readAuthFile(f['registry-config'], io.env), insecure: new Set(insecure), ...(config ? { config } : {}) });
  } catch (err) {
    if (err instanceof MappingError || err instanceof PlatformFilterError || err instanceof AuthFileError || err instanceof ConfigError) {
      io.stderr(`regcache copy: ${err.message.replace(/\n/g, '\nregcache copy: ')}\n`);
      return 2;
    }
    throw err;
  }
  const dryRun = args.booleans.has('dry-run');
  const out = await createOutput(io, output, dryRun);
  const started = Date.now();
  try {
    const result = await runCopy(mappings, {
      registries, dryRun, platforms,
      force: args.booleans.has('force'),
      continueOnError: args.booleans.has('continue-on-error'),
      skipMissing: args.booleans.has('skip-missing'),
      keepManifestList: args.booleans.has('keep-manifest-list'),
      maxPerRegistry: positiveInt(f['max-per-registry'], 'max-per-registry', 6),
      maxRegistries: positiveInt(f['max-registries'], 'max-registries', 4),
    }, (e) => out.onEvent(e));
    out.finish(result, Date.now() - started);
    return result.counts.failed > 0 || result.counts['not-started'] > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof MappingError) {
      io.stderr(`regcache copy: ${err.message.replace(/\n/g, '\nregcache copy: ')}\n`);
      return 2;
    }
    throw err;
  } finally {
    await registries.close();
  }
};
