#!/usr/bin/env -S node --max-semi-space-size=2
/** Process entry: the only module that touches process.*. Dispatches to the command modules. */
import { setFlagsFromString } from 'node:v8';
import { UsageError, type CliIo, type Command } from './cli/args.js';
import { VERSION } from './version.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  serve: { summary: 'run the caching registry proxy', load: async () => (await import('./cli/serve.js')).serve },
  mirror: { summary: 'list, add or remove upstream hosts in the config (mirror list|add|remove)', load: async () => (await import('./cli/mirror.js')).mirror },
  'containerd-config': { summary: 'print containerd hosts.toml or k3s registries.yaml pointing at regcache', load: async () => (await import('./cli/containerd-config.js')).containerdConfig },
  gc: { summary: 'run one retention sweep now (--dry-run to only report)', load: async () => (await import('./cli/gc.js')).gc },
  fsck: { summary: 'check the store against the index (--repair to fix)', load: async () => (await import('./cli/fsck.js')).fsck },
  copy: { summary: 'copy images to other registries from mappings (SRC DST, -f FILE), once', load: async () => (await import('./cli/copy.js')).copy },
  sync: { summary: 'sync jobs of the running server: list, status NAME, now NAME [--wait], cancel NAME', load: async () => (await import('./cli/sync.js')).sync },
  healthcheck: { summary: 'exit 0 when the configured listener answers /healthz (for container HEALTHCHECKs)', load: async () => (await import('./cli/healthcheck.js')).healthcheck },
};

function help(): string {
  const lines = ['usage: regcache <command> [flags]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(18)} ${c.summary}`);
  lines.push('', 'Run `regcache <command> --help` for its flags.', '  --help      this text', '  --version   print the version');
  return lines.join('\n') + '\n';
}

/**
 * A reader that goes away (`regcache mirror list | head`) makes the next write fail with
 * EPIPE. That is the reader's choice, not a crash: drop further output quietly and let the
 * command finish (gc still completes its sweep) with its own exit status.
 */
function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
      throw err;
    });
  }
}

async function main(argv: string[]): Promise<number> {
  const io: CliIo = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    ...(process.stderr.isTTY ? { terminal: { stream: process.stderr, stdoutToo: process.stdout.isTTY === true } } : {}),
  };
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.stdout(help());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    io.stdout(`regcache ${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    io.stderr(`regcache: unknown command ${JSON.stringify(cmd)}\n\n${help()}`);
    return 2;
  }
  // undici parses HTTP/1 with llhttp compiled to WebAssembly. V8 compiles it twice: a quick
  // baseline at once, then an optimised tier on a background thread that a short command
  // pays ~0.1 CPU-s for and waits on at exit (`regcache copy` start to first request and
  // exit: 0.23 s -> 0.14 s for one request). The server lives long enough to use the
  // optimised parser; every other command keeps the baseline. Set before undici loads.
  if (cmd !== 'serve') setFlagsFromString('--liftoff-only');
  try {
    return await (await entry.load())(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`regcache ${cmd}: ${err.message} (see regcache ${cmd} --help)\n`);
      return 2;
    }
    io.stderr(`regcache ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}

ignoreClosedPipes();
main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`regcache: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
