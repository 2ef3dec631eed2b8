/** `regcache fsck [--repair]`: checks the store against the index; repairs on request. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { dataDirLockHolder } from '../storage/data-dir-lock.js';
import { recover } from '../storage/recovery.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { openStore } from './store-command.js';

const HELP = `usage: regcache fsck [--config FILE] [--data DIR] [--repair]

Checks the store against the index: leftover temp files, index rows whose file is
missing, files with no index row (hashed: adopted if intact, removed if not), and size
mismatches. Without --repair it only reports, and may run beside a serve: the temp files
of that serve's fills in progress are then counted apart, not called leftovers.
--repair needs the data directory alone: while a serve holds it, fsck --repair is refused
naming the serve's PID (serve runs the same repair at every start).
`;

function countEntries(dir: string): number {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

export const fsck: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'data'], booleans: ['help', 'repair'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const repair = args.booleans.has('repair');
  const store = openStore(args, io, repair ? 'fsck --repair' : undefined);
  try {
    // Read-only beside a live serve: tmp/ holds its fills in progress, not leftovers, so the
    // check is run with a temp directory that does not exist and tmp/ is only counted.
    const live = repair ? undefined : dataDirLockHolder(store.layout.root);
    const lay = live ? { ...store.layout, tmpDir: join(store.layout.root, 'tmp', '.fills-of-a-live-serve') } : store.layout;
    const inFlight = live ? countEntries(store.layout.tmpDir) : 0;
    const r = await recover(lay, store.index, { repair });
    const verb = repair ? 'fixed' : 'found';
    io.stdout(`${repair ? 'repaired' : 'checked (no changes made; use --repair)'}: ${store.layout.root}\n`);
    if (live) io.stdout(`  in use by regcache ${live.command} (PID ${live.pid}): fills in progress  ${inFlight} (not leftovers)\n`);
    io.stdout(`  temp files left by an earlier run   ${verb}: ${r.tempFilesRemoved}\n`);
    io.stdout(`  index rows with no file              ${verb}: ${r.missingBlobRowsDropped}\n`);
    io.stdout(`  files with no index row, intact      ${repair ? 'adopted' : 'found'}: ${r.orphansAdopted}\n`);
    io.stdout(`  files with no index row, corrupt     ${repair ? 'removed' : 'found'}: ${r.orphansRemoved}\n`);
    io.stdout(`  files whose size disagrees           ${repair ? 'removed' : 'found'}: ${r.sizeMismatchesRemoved}\n`);
    io.stdout(`  stray files in blobs/                ${repair ? 'removed' : 'found'}: ${r.strayFilesRemoved}\n`);
    const problems = r.tempFilesRemoved + r.missingBlobRowsDropped + r.orphansAdopted + r.orphansRemoved + r.sizeMismatchesRemoved + r.strayFilesRemoved;
    return problems > 0 && !repair ? 3 : 0;
  } finally {
    store.close();
  }
};
