/** `regcache gc [--dry-run]`: one retention sweep now, printing what goes and the bytes freed. */
import { formatBytes } from '../config/units.js';
import { sweep, type EvictedUnit } from '../store/eviction.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { createProgress } from './progress.js';
import { openStore } from './store-command.js';

const HELP = `usage: regcache gc [--config FILE] [--data DIR] [--dry-run]

Runs one retention sweep now with the config's retention.maxAge and retention.maxSize:
images not pulled within maxAge go, then least recently pulled images until the store is
under maxSize; a layer still used by a retained image stays. --dry-run prints the same
list and changes nothing. A sweep needs the data directory alone: while a serve holds it,
gc is refused naming the serve's PID (that serve sweeps every retention.interval on its
own); --dry-run changes nothing and may run beside it. On a terminal a progress line counts
the images as they go (on stderr); otherwise stderr gets a line when the sweep starts and
one when it ends.
`;

function describe(u: EvictedUnit, dry: boolean): string {
  const age = new Date(u.lastPulledAt).toISOString();
  const names = u.names?.length ? ` [${u.names.join(', ')}]` : '';
  return `${dry ? 'would remove' : 'remove'} ${u.kind} ${u.digest}${names} (${u.reason}; last pulled ${age}; ${u.manifests.length} manifest(s), ${u.blobs.length} blob(s), ${formatBytes(u.bytes)})\n`;
}

export const gc: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'data'], booleans: ['help', 'dry-run'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const dry = args.booleans.has('dry-run');
  const store = await openStore(args, io, dry ? undefined : 'gc');
  const progress = createProgress('gc', io);
  try {
    const { maxAge, maxSize } = store.config.retention;
    progress.step(dry ? 'planning' : 'removing');
    // Each batch is printed as soon as it is gone, so a long sweep shows what it did so far.
    const onUnits = (units: EvictedUnit[]): void => {
      for (const u of units) {
        progress.line(describe(u, dry));
        progress.tick(u.names?.[0] ?? u.digest);
      }
    };
    const plan = await sweep({ blobs: store.blobs, meta: store.meta, isPinned: () => false }, { maxAge, maxSize }, Date.now(), { dryRun: dry, withNames: true, onUnits });
    progress.stop();
    const images = plan.units.filter((u) => u.kind === 'image').length;
    io.stdout(`${dry ? 'dry run: would free' : 'freed'} ${formatBytes(plan.bytesFreed)} (${plan.bytesFreed} bytes) of ${formatBytes(plan.bytesBefore)}; ${images} image(s), ${plan.units.length - images} unreferenced blob(s)\n`);
    return 0;
  } finally {
    progress.stop();
    await store.close();
  }
};
