/** A small flag parser for the regcache command line: `--flag value`, `--flag=value`, boolean `--flag`. */

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  /** Flags that take a value. */
  values: string[];
  /** Flags that take no value. */
  booleans?: string[];
}

export interface ParsedArgs {
  flags: Record<string, string | undefined>;
  booleans: Set<string>;
  positionals: string[];
}

export function parseArgs(argv: string[], spec: FlagSpec): ParsedArgs {
  const out: ParsedArgs = { flags: {}, booleans: new Set(), positionals: [] };
  const bools = spec.booleans ?? [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || a === '--') {
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (bools.includes(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      out.booleans.add(name);
      continue;
    }
    if (!spec.values.includes(name)) throw new UsageError(`unknown flag --${name}`);
    let value: string | undefined;
    if (eq !== -1) value = a.slice(eq + 1);
    else {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
    }
    out.flags[name] = value;
  }
  return out;
}

/** What a command needs from the process, injected so commands are testable in-process. */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Reads all of stdin (commands that take `-f -`). */
  readStdin?: () => Promise<string>;
  /** stderr when it is a terminal (progress bars are drawn there); stdoutToo: stdout is one too. */
  terminal?: { stream: NodeJS.WriteStream; stdoutToo: boolean };
}

export type Command = (argv: string[], io: CliIo) => Promise<number>;

export const DEFAULT_CONFIG = 'config/regcache.yaml';

/** The config file a command reads: --config, then REGCACHE_CONFIG, then the default. */
export function configPath(flags: ParsedArgs['flags'], env: NodeJS.ProcessEnv): string {
  return flags.config ?? env.REGCACHE_CONFIG ?? DEFAULT_CONFIG;
}
