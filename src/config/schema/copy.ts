/**
 * `copy.<name>`: scheduled copies (docs/copy.md): the mappings of `regcache copy`, inline
 * and/or in mapping files, run by the jobs service on the sync jobs' schedule keys. Every
 * key applies live. Mappings, mapping files and the credentials file are checked here so a
 * bad one refuses the config (or the reload) with an error naming the job; files are read
 * again at each run, so an edited file applies without a reload.
 */
import { readFileSync } from 'node:fs';
import type { CopyJobConfig } from '../types.js';
import { fail } from '../errors.js';
import { AuthFileError, parseAuthFile } from '../../transfer/auth-file.js';
import { checkWrites, MappingError, parseMappingText, writesOf, type Mapping } from '../../transfer/mapping.js';
import { key, section } from './define.js';
import { bool, str, stringList } from './values.js';
import { nameProblem, platforms, scheduleKeys } from './sync.js';

/** Mapping lines written as one (multi-line) string or as a YAML list of lines. */
function lines(v: unknown, k: string): string[] {
  if (typeof v === 'string') return v.split(/\r?\n/);
  return stringList('mapping lines (`SRC DST [DST...]` or `SRC=DST`)')(v, k);
}

function hosts(v: unknown, k: string): string[] {
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : stringList('hosts')(v, k);
  return list.map((h) => h.toLowerCase());
}

/** The origin name inline mappings report in errors and results: `copy.<name>.mappings`. */
export function inlineOrigin(job: string): string {
  return `copy.${job}.mappings`;
}

/** Parses a job's mappings: inline lines, then each file (read now). Throws MappingError or a file error. */
export function readCopyMappings(job: Pick<CopyJobConfig, 'name' | 'mappings' | 'files'>): Mapping[] {
  const out: Mapping[] = [];
  const problems: MappingError['problems'] = [];
  const collect = (text: string, origin: string): void => {
    try {
      out.push(...parseMappingText(text, origin));
    } catch (err) {
      if (!(err instanceof MappingError)) throw err;
      problems.push(...err.problems);
    }
  };
  if (job.mappings.length) collect(job.mappings.join('\n'), inlineOrigin(job.name));
  for (const f of job.files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new Error(`${f}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    collect(text, f);
  }
  if (problems.length) throw new MappingError(problems);
  checkWrites(writesOf(out));
  return out;
}

export const copy = section<Omit<CopyJobConfig, 'name'>>('copy', 'map', {
  mappings: key(lines, { default: [], defaultDoc: 'none', apply: 'live', doc: 'mapping lines as in `regcache copy -f` (`quay.io/org/app:* registry.example:5000/mirror/app`; `#` comments): a list, or one multi-line string' }),
  files: key(stringList('mapping file paths'), { default: [], defaultDoc: 'none', apply: 'live', doc: 'mapping files (one mapping per line); read again at each run' }),
  ...scheduleKeys,
  dryRun: key(bool, { default: false, apply: 'live', doc: 'plan only (`--dry-run`): each run records what it would send and sends no write request' }),
  platforms: key(platforms, { default: [], defaultDoc: 'all', apply: 'live', doc: 'only these platforms of multi-platform images (`--platforms`: `linux/amd64, linux/arm64/v8`)' }),
  keepManifestList: key(bool, { default: false, apply: 'live', doc: 'with `platforms`, keep the source index where the destination accepts it (`--keep-manifest-list`)' }),
  continueOnError: key(bool, { default: false, apply: 'live', doc: 'copy the rest after a failed image (`--continue-on-error`); the run still ends FAIL' }),
  skipMissing: key(bool, { default: false, apply: 'live', doc: 'a source that does not exist is skipped, not a failure (`--skip-missing`)' }),
  force: key(bool, { default: false, apply: 'live', doc: 'send blobs and manifests even when the destination has them (`--force`)' }),
  registryConfig: key(str, { apply: 'live', doc: 'credentials file for sources and destinations (docker `config.json` format, `--registry-config`); read at each run, never logged' }),
  insecure: key(hosts, { default: [], defaultDoc: 'none', apply: 'live', doc: 'hosts spoken to over plain HTTP (`--insecure`)' }),
}, {
  entry: { field: 'name', doc: '<name>', nameProblem },
  check: (j, prefix) => {
    if (j.mappings.every((l) => l.split('#')[0]!.trim() === '') && j.files.length === 0) fail(prefix, 'needs `mappings` or `files`');
    if (j.keepManifestList && j.platforms.length === 0) fail(`${prefix}.keepManifestList`, 'needs `platforms` (without a filter the whole index is always kept)');
    try {
      readCopyMappings({ name: prefix.slice('copy.'.length), mappings: j.mappings, files: j.files });
    } catch (err) {
      const where = err instanceof MappingError && err.problems.every((p) => p.origin.file === inlineOrigin(prefix.slice('copy.'.length))) ? 'mappings' : 'files';
      fail(`${prefix}.${where}`, (err as Error).message.replace(/\n/g, '; '));
    }
    if (j.registryConfig !== undefined) {
      try {
        parseAuthFile(readFileSync(j.registryConfig, 'utf8'), j.registryConfig);
      } catch (err) {
        const msg = err instanceof AuthFileError ? err.message : (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${j.registryConfig}: no such file` : (err as Error).message;
        fail(`${prefix}.registryConfig`, msg);
      }
    }
  },
});
