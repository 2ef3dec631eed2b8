/**
 * One run of a scheduled copy (`copy.<name>`) for the jobs service: reads the job's
 * mappings (inline lines and files, read again each run), builds the registry clients
 * from its credentials file and `insecure` hosts (and regcache's upstream config for
 * sources), and runs the copy (transfer/run-copy.ts) into the service's JobRun, keeping
 * `pending` current for status. A problem before any image (a mapping file gone bad, a
 * credentials file that does not parse) throws, so the run ends FAIL with that message.
 */
import type { Config, CopyJobConfig } from '../config/types.js';
import { readCopyMappings } from '../config/schema/copy.js';
import { readAuthFile, type AuthFile } from '../transfer/auth-file.js';
import { parsePlatformList } from '../transfer/platforms.js';
import { RegistrySet } from '../transfer/registries.js';
import { runCopyPlan } from '../transfer/run-copy.js';
import type { JobRun } from './job-control.js';

export interface CopyJobRunOptions {
  job: CopyJobConfig;
  config: Config;
  run: JobRun;
  signal: AbortSignal;
}

function authOf(job: CopyJobConfig): AuthFile {
  // Without a file: anonymous (and the upstreams' credentials for sources), never the
  // process's own ~/.docker/config.json.
  return job.registryConfig === undefined ? { path: undefined, entries: new Map() } : readAuthFile(job.registryConfig, {});
}

export async function runCopyJob(o: CopyJobRunOptions): Promise<void> {
  const { job, run, signal } = o;
  const mappings = readCopyMappings(job);
  const registries = new RegistrySet({ auth: authOf(job), insecure: new Set(job.insecure), config: o.config });
  const result = await runCopyPlan({ mappings, trigger: run.trigger }, {
    registries, signal, dryRun: job.dryRun, force: job.force, continueOnError: job.continueOnError, skipMissing: job.skipMissing,
    keepManifestList: job.keepManifestList,
    ...(job.platforms.length ? { platforms: parsePlatformList(job.platforms.join(',')) } : {}),
  }, (e) => {
    if (e.type === 'plan') run.counts.pending = e.images + e.problems;
    else if (e.type === 'image') run.counts.pending = Math.max(0, run.counts.pending - 1);
    else if (e.type === 'bytes') run.bytes += e.bytes;
  });
  if (signal.aborted) throw signal.reason;
  run.counts = result.counts;
  run.bytes = result.bytes;
  if (result.tags) run.tags = result.tags;
  // A failure before any image (the plan could not be made): no image tells why.
  if (result.result === 'FAIL' && result.counts.failed === 0) throw new Error(result.error ?? 'the copy failed');
}
