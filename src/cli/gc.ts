/** `regcache gc [--dry-run]`: one retention sweep now, printing what goes and the bytes freed. */
import { formatBytes } from '../config/units.js';
import { applySweep, planSweep } from '../storage/retention.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { openStore } from './store-command.js';

const HELP = `usage: regcache gc [--config FILE] [--data DIR] [--dry-run]

Runs one retention sweep now with the config's retention.maxAge and retention.maxSize:
images not pulled within maxAge go, then least recently pulled images until the store is
under maxSize; a layer still used by a retained image stays. --dry-run prints the same
list and changes nothing. A sweep needs the data directory alone: while a serve holds it,
gc is refused naming the serve's PID (that serve sweeps every retention.interval on its
own); --dry-run changes nothing and may run beside it.
`;

export const gc: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'data'], booleans: ['help', 'dry-run'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const dry = args.booleans.has('dry-run');
  const store = openStore(args, io, dry ? undefined : 'gc');
  try {
    const { maxAge, maxSize } = store.config.retention;
    const plan = planSweep(store.index, { maxAge, maxSize }, Date.now(), () => false);
    for (const u of plan.units) {
      const age = new Date(u.lastPulledAt).toISOString();
      io.stdout(`${dry ? 'would remove' : 'remove'} ${u.kind} ${u.digest} (${u.reason}; last pulled ${age}; ${u.manifests.length} manifest(s), ${u.blobs.length} blob(s), ${formatBytes(u.bytes)})\n`);
    }
    if (!dry && plan.units.length) await applySweep(store.index, store.layout, plan, () => false);
    io.stdout(`${dry ? 'dry run: would free' : 'freed'} ${formatBytes(plan.bytesFreed)} (${plan.bytesFreed} bytes) of ${formatBytes(plan.bytesBefore)}; ${plan.units.length} unit(s)\n`);
    return 0;
  } finally {
    store.close();
  }
};
