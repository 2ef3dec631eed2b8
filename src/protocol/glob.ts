/**
 * Glob patterns over repository names (`team/**`, `docker.io/myorg/*`, `ci-?/app`), as the
 * `hostedRepositories` keys and the `auth.rules` repository lists use them. Pure.
 *   `**`  any characters, `/` included (`team/**` matches `team/app` and `team/a/b`, not `team`);
 *   `*`   any characters within one path component (no `/`);
 *   `?`   one character other than `/`.
 * Everything else is literal. A pattern is anchored: it must match the whole name.
 */

const PATTERN_CHARS = /^[a-z0-9._\-/:*?]+$/;

/** Why `pattern` is not a usable repository pattern, or undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > 300) return 'a repository pattern must have 1 to 300 characters';
  if (!PATTERN_CHARS.test(pattern)) return `invalid repository pattern ${JSON.stringify(pattern)}: use lowercase name characters, / and the wildcards *, ** and ?`;
  if (/\*\*\*/.test(pattern)) return `invalid repository pattern ${JSON.stringify(pattern)}: *** is not a wildcard (use **)`;
  if (pattern.startsWith('/') || pattern.endsWith('/') || pattern.includes('//')) return `invalid repository pattern ${JSON.stringify(pattern)}: empty path component`;
  return undefined;
}

/** Compiles a pattern (checked with globProblem) to an anchored RegExp. */
export function compileGlob(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.\\^$+()[\]{}|-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A set of patterns, each compiled once; `first` returns the first pattern (in list order) that matches. */
export class GlobSet<T = true> {
  private readonly compiled: Array<{ pattern: string; re: RegExp; value: T }>;

  constructor(entries: Iterable<[string, T]>) {
    this.compiled = [...entries].map(([pattern, value]) => ({ pattern, re: compileGlob(pattern), value }));
  }

  get size(): number {
    return this.compiled.length;
  }

  first(name: string): { pattern: string; value: T } | undefined {
    for (const c of this.compiled) if (c.re.test(name)) return { pattern: c.pattern, value: c.value };
    return undefined;
  }

  matches(name: string): boolean {
    return this.first(name) !== undefined;
  }
}
