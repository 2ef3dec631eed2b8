/** `regcache fsck [--repair]`: checks the store against the index; repairs on request. */
import { recover } from '../store/recovery.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { openStore } from './store-command.js';

const HELP = `usage: regcache fsck [--config FILE] [--data DIR] [--repair]

Checks the store against the index: leftover temp files, index rows whose file is
missing, files with no index row (hashed: adopted if intact, removed if not), and size
mismatches. Without --repair it only reports. Run it while regcache is stopped, or rely
on the same check that serve runs at every start.
`;

export const fsck: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'data'], booleans: ['help', 'repair'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const store = await openStore(args, io);
  try {
    const repair = args.booleans.has('repair');
    const r = await recover(store.blobs, store.meta, { repair });
    const verb = repair ? 'fixed' : 'found';
    io.stdout(`${repair ? 'repaired' : 'checked (no changes made; use --repair)'}: ${store.blobs.layout.root}\n`);
    io.stdout(`  temp files left by an earlier run   ${verb}: ${r.tempFilesRemoved}\n`);
    io.stdout(`  index rows with no file              ${verb}: ${r.missingBlobRowsDropped}\n`);
    io.stdout(`  files with no index row, intact      ${repair ? 'adopted' : 'found'}: ${r.orphansAdopted}\n`);
    io.stdout(`  files with no index row, corrupt     ${repair ? 'removed' : 'found'}: ${r.orphansRemoved}\n`);
    io.stdout(`  files whose size disagrees           ${repair ? 'removed' : 'found'}: ${r.sizeMismatchesRemoved}\n`);
    io.stdout(`  stray files in blobs/                ${repair ? 'removed' : 'found'}: ${r.strayFilesRemoved}\n`);
    const problems = r.tempFilesRemoved + r.missingBlobRowsDropped + r.orphansAdopted + r.orphansRemoved + r.sizeMismatchesRemoved + r.strayFilesRemoved;
    return problems > 0 && !repair ? 3 : 0;
  } finally {
    await store.meta.close();
  }
};
