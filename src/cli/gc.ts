/**
 * `regcache gc [--dry-run]`: one retention sweep of the cache, then hosted retention and GC,
 * printing what goes in each part (cached, hosted) with repositories and tags, and the bytes freed.
 */
import { formatBytes } from '../config/units.js';
import { collectHosted } from '../registry/hosted/hosted-gc.js';
import { Pins } from '../registry/proxy/pins.js';
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

Then the hosted part: hosted retention (hostedRepositories.<pattern>.maxAge, keepTags,
untaggedGrace) removes tags and unlinks manifests, and garbage goes: manifests no
repository links, and blobs pushed to a hosted repository that no manifest references
and that were not pushed or pulled within hosted.gcGrace. Cached content is never
removed by the hosted part, hosted content never by the cached part.
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
    io.stdout('cached:\n');
    progress.step(dry ? 'planning' : 'removing');
    // Each batch is printed as soon as it is gone, so a long sweep shows what it did so far.
    const onUnits = (units: EvictedUnit[]): void => {
      for (const u of units) {
        progress.line(describe(u, dry));
        progress.tick(u.names?.[0] ?? u.digest);
      }
    };
    const plan = await sweep({ blobs: store.blobs, meta: store.meta, isPinned: () => false }, { maxAge, maxSize }, Date.now(), { dryRun: dry, withNames: true, onUnits, summaryOnly: true });
    progress.stop();
    const { images, units } = plan.counts;
    io.stdout(`${dry ? 'dry run: would free' : 'freed'} ${formatBytes(plan.bytesFreed)} (${plan.bytesFreed} bytes) of ${formatBytes(plan.bytesBefore)}; ${images} image(s), ${units - images} unreferenced blob(s)\n`);
    const cfg = store.config;
    const h = await collectHosted({ blobs: store.blobs, meta: store.meta, pins: new Pins() }, cfg.hostedRepositories, cfg.hosted.gcGrace, Date.now(), { dryRun: dry });
    const verb = dry ? 'would remove' : 'remove';
    io.stdout('hosted:\n');
    for (const t of h.tags) io.stdout(`${verb} tag ${t} (hosted retention)\n`);
    for (const m of h.unlinked) io.stdout(`${dry ? 'would unlink' : 'unlink'} manifest ${m} (hosted retention)\n`);
    for (const m of h.manifests) io.stdout(`${verb} manifest ${m.digest} (no repository links it; ${formatBytes(m.size)})\n`);
    for (const b of h.blobs) io.stdout(`${verb} blob ${b.digest} [${b.repos.join(', ')}] (no manifest references it; ${formatBytes(b.size)})\n`);
    io.stdout(`${dry ? 'dry run: would free' : 'freed'} ${formatBytes(h.bytesFreed)} (${h.bytesFreed} bytes); ${h.tags.length} tag(s), ${h.unlinked.length} manifest(s) unlinked, ${h.manifests.length} manifest(s) and ${h.blobs.length} blob(s) removed\n`);
    return 0;
  } finally {
    progress.stop();
    await store.close();
  }
};
