/**
 * The `source` of a sync job: `host/repository` (one repository) or `host/namespace/*`
 * (every repository under a namespace, as the upstream's catalog lists them). The host is
 * always written, so a job never depends on `defaultUpstream`. Pure.
 */
import { isValidName } from './grammar.js';

export type SyncSource =
  | { host: string; kind: 'repository'; repo: string }
  | { host: string; kind: 'namespace'; prefix: string };

export function parseSyncSource(source: string): SyncSource | { problem: string } {
  const slash = source.indexOf('/');
  if (slash <= 0) return { problem: `${JSON.stringify(source)} must start with a configured upstream host (quay.io/org/repo or quay.io/org/*)` };
  const host = source.slice(0, slash);
  const rest = source.slice(slash + 1);
  if (rest.endsWith('/*')) {
    const prefix = rest.slice(0, -2);
    if (!isValidName(prefix)) return { problem: `${JSON.stringify(prefix)} is not a valid namespace` };
    return { host, kind: 'namespace', prefix };
  }
  if (rest.includes('*')) return { problem: 'a wildcard is allowed only as the last component (quay.io/org/*)' };
  if (!isValidName(rest)) return { problem: `${JSON.stringify(rest)} is not a valid repository name` };
  // As for pulls: a one-component name on Docker Hub is an official image.
  return { host, kind: 'repository', repo: host === 'docker.io' && !rest.includes('/') ? `library/${rest}` : rest };
}

/** Whether `repo` (a catalog entry) is under a namespace source. */
export function inNamespace(prefix: string, repo: string): boolean {
  return repo.startsWith(`${prefix}/`);
}

/** The hosted repository a sync job mirrors into (`target: hosted:<repository>`), or undefined for `cache`. */
export function hostedTargetOf(job: { target: string }): string | undefined {
  return job.target.startsWith('hosted:') ? job.target.slice('hosted:'.length) : undefined;
}
