/** `regcache fsck [--repair]`: checks the store against the index; repairs on request. */
import { dataDirLockHolder } from '../store/fs/data-dir-lock.js';
import { recover, type RecoveryProblem } from '../store/recovery.js';
import { parseArgs, type CliIo, type Command } from './args.js';
import { createProgress } from './progress.js';
import { openStore } from './store-command.js';

const HELP = `usage: regcache fsck [--config FILE] [--data DIR] [--repair]

Checks the store against the index: leftover temp files, index rows whose file is
missing, files with no index row (hashed: adopted if intact, removed if not), and size
mismatches. Without --repair it only reports, and may run beside a serve: the temp files
of that serve's fills in progress are then counted apart, not called leftovers.
--repair needs the data directory alone: while a serve holds it, fsck --repair is refused
naming the serve's PID (serve runs the same repair at every start). Each blob in trouble
is listed with the tags (or repositories) that name it. On a terminal a progress line
follows the checks (on stderr); otherwise stderr gets a line as each check starts and ends.
`;

const PROBLEMS: Record<RecoveryProblem, string> = {
  'no-file': 'index row with no file',
  'size-mismatch': 'file whose size disagrees',
  'orphan-intact': 'file with no index row, intact',
  'orphan-corrupt': 'file with no index row, corrupt',
};


export const fsck: Command = async (argv: string[], io: CliIo): Promise<number> => {
  const args = parseArgs(argv, { values: ['config', 'data'], booleans: ['help', 'repair'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const repair = args.booleans.has('repair');
  const store = await openStore(args, io, repair ? 'fsck --repair' : undefined);
  try {
    // Read-only beside a live serve: tmp/ holds its fills in progress, not leftovers: they
    // are counted, not judged.
    const root = store.blobs.layout.root;
    const live = repair ? undefined : dataDirLockHolder(root);
    const inFlight = live ? (await store.blobs.listSpools()).length : 0;
    const progress = createProgress('fsck', io);
    // Named as found, before a repair drops the rows that name them.
    const findings: string[] = [];
    const onFinding = async (problem: RecoveryProblem, digest: string): Promise<void> => {
      const [named] = await store.meta.namesOf([digest]);
      const names = named?.names.length ? ` [${named.names.join(', ')}]` : '';
      findings.push(`  ${PROBLEMS[problem]}: ${digest}${names}\n`);
    };
    let r;
    try {
      r = await recover(store.blobs, store.meta, { repair, skipSpools: live !== undefined, progress, onFinding });
    } finally {
      progress.stop();
    }
    const verb = repair ? 'fixed' : 'found';
    io.stdout(`${repair ? 'repaired' : 'checked (no changes made; use --repair)'}: ${root}\n`);
    if (live) io.stdout(`  in use by regcache ${live.command} (PID ${live.pid}): fills in progress  ${inFlight} (not leftovers)\n`);
    io.stdout(`  temp files left by an earlier run   ${verb}: ${r.tempFilesRemoved}\n`);
    io.stdout(`  index rows with no file              ${verb}: ${r.missingBlobRowsDropped}\n`);
    io.stdout(`  files with no index row, intact      ${repair ? 'adopted' : 'found'}: ${r.orphansAdopted}\n`);
    io.stdout(`  files with no index row, corrupt     ${repair ? 'removed' : 'found'}: ${r.orphansRemoved}\n`);
    io.stdout(`  files whose size disagrees           ${repair ? 'removed' : 'found'}: ${r.sizeMismatchesRemoved}\n`);
    io.stdout(`  stray files in blobs/                ${repair ? 'removed' : 'found'}: ${r.strayFilesRemoved}\n`);
    for (const line of findings) io.stdout(line);
    const problems = r.tempFilesRemoved + r.missingBlobRowsDropped + r.orphansAdopted + r.orphansRemoved + r.sizeMismatchesRemoved + r.strayFilesRemoved;
    return problems > 0 && !repair ? 3 : 0;
  } finally {
    await store.close();
  }
};
