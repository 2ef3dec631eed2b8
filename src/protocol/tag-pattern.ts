/**
 * Which tags a sync job keeps: Quay's repository-mirroring pattern syntax. A comma list of
 * shell-style patterns (`*` any run, `?` one character, `[seq]` one of, `[!seq]` none of,
 * with ranges `a-z` inside brackets), as Python's fnmatch reads them, matching the whole
 * tag; a list of exclusions in the same syntax; and optionally a semver range (npm
 * `semver`, loose: `v1.2.3` counts as 1.2.3; a tag that is not a full version, such as
 * `3.20` or `latest`, never matches a range). Pure: no I/O.
 */
import { createRequire } from 'node:module';
import type SemverModule from 'semver';

const load = createRequire(import.meta.url);
/**
 * npm's semver, loaded on first use (then from require's cache): only patterns with a `semver`
 * range need it, and it costs ~25 ms of the start-up of every command that reads the config.
 */
function semver(): typeof SemverModule {
  return load('semver') as typeof SemverModule;
}

export interface TagFilterSpec {
  /** Comma list of patterns; `*` keeps every tag. */
  include: string;
  /** Comma list of patterns of tags to leave out even when included. */
  exclude?: string | undefined;
  /** A semver range (`>=1.2 <2`, `^3.1`): only tags that are versions in it. */
  semver?: string | undefined;
}

export type TagFilter = (tag: string) => boolean;

function escape(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

/**
 * One pattern as a regular expression source. A `[` without its `]` is a literal `[`
 * (as fnmatch reads it); inside brackets only `!` (first) and `-` (between two characters)
 * are special.
 */
export function patternSource(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '!') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, j);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      let cls = '';
      for (let k = 0; k < body.length; k++) {
        if (body[k + 1] === '-' && k + 2 < body.length) {
          cls += `${escape(body[k]!)}-${escape(body[k + 2]!)}`;
          k += 2;
        } else cls += escape(body[k]!);
      }
      out += `[${negate ? '^' : ''}${cls}]`;
      i = j;
    } else out += escape(c);
  }
  return out;
}

/** Splits a comma list, trimming blanks; empty entries are dropped. */
export function splitPatterns(list: string): string[] {
  return list.split(',').map((p) => p.trim()).filter((p) => p !== '');
}

/** A problem with a spec, for config validation; undefined when it is usable. */
export function tagFilterProblem(spec: TagFilterSpec): string | undefined {
  if (splitPatterns(spec.include).length === 0) return 'needs at least one pattern (`*` keeps every tag)';
  for (const p of [...splitPatterns(spec.include), ...splitPatterns(spec.exclude ?? '')]) {
    if (!/^[\x21-\x7e]+$/.test(p)) return `pattern ${JSON.stringify(p)} has spaces or non-ASCII characters`;
  }
  if (spec.semver !== undefined && semver().validRange(spec.semver, { loose: true }) === null) return `invalid semver range ${JSON.stringify(spec.semver)}`;
  return undefined;
}

function anyOf(list: string): RegExp | undefined {
  const parts = splitPatterns(list);
  return parts.length ? new RegExp(`^(?:${parts.map(patternSource).join('|')})$`, 's') : undefined;
}

/** Whether a tag, read as a version, is in `range` (semver loaded once, here). */
function inSemverRange(range: string): (tag: string) => boolean {
  const sv = semver();
  return (tag) => {
    const v = sv.valid(tag, { loose: true });
    return v !== null && sv.satisfies(v, range, { loose: true, includePrerelease: false });
  };
}

export function compileTagFilter(spec: TagFilterSpec): TagFilter {
  const inc = anyOf(spec.include);
  const exc = anyOf(spec.exclude ?? '');
  const inRange = spec.semver === undefined ? undefined : inSemverRange(spec.semver);
  return (tag) => {
    if (!inc || !inc.test(tag)) return false;
    if (exc && exc.test(tag)) return false;
    return !inRange || inRange(tag);
  };
}
