/**
 * The platform filter of a copy: `--platforms linux/amd64,linux/arm64/v8` (an entry without
 * variant matches every variant) and `--filter-by-os REGEX` (oc's name), matched against
 * `os/architecture[/variant]`, whole string. Applies to the children of an index; pure.
 */

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PlatformFilter {
  /** As the user wrote it, for messages. */
  text: string;
  matches(p: Platform | undefined): boolean;
}

export class PlatformFilterError extends Error {
  override name = 'PlatformFilterError';
}

export function platformString(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

const PART = /^[a-z0-9._-]+$/;

export function parsePlatformList(list: string): PlatformFilter {
  const wanted = list.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const parts = s.split('/');
    if (parts.length < 2 || parts.length > 3 || !parts.every((x) => PART.test(x))) {
      throw new PlatformFilterError(`--platforms: ${JSON.stringify(s)} is not OS/ARCH[/VARIANT] (e.g. linux/arm64/v8)`);
    }
    return { os: parts[0]!, architecture: parts[1]!, variant: parts[2] };
  });
  if (wanted.length === 0) throw new PlatformFilterError('--platforms: empty list');
  return {
    text: list,
    matches: (p) => p !== undefined && wanted.some((w) => w.os === p.os && w.architecture === p.architecture && (w.variant === undefined || w.variant === p.variant)),
  };
}

export function parseOsFilter(regex: string): PlatformFilter {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${regex})$`);
  } catch (err) {
    throw new PlatformFilterError(`--filter-by-os: invalid regular expression: ${(err as Error).message}`);
  }
  return { text: regex, matches: (p) => p !== undefined && re.test(platformString(p)) };
}

/** The platform of an index entry, if it names one. */
export function platformOf(entry: unknown): Platform | undefined {
  const p = (entry as { platform?: { os?: unknown; architecture?: unknown; variant?: unknown } } | null)?.platform;
  if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined;
  return typeof p.variant === 'string' ? { os: p.os, architecture: p.architecture, variant: p.variant } : { os: p.os, architecture: p.architecture };
}

/**
 * The index with only the entries whose digests are in `keep` (order kept, every other
 * field unchanged). Its bytes, and so its digest, differ from the original's.
 */
export function filterIndex(body: Buffer, keep: ReadonlySet<string>): Buffer {
  const doc = JSON.parse(body.toString('utf8')) as { manifests?: Array<{ digest?: string }> };
  doc.manifests = (doc.manifests ?? []).filter((m) => typeof m.digest === 'string' && keep.has(m.digest));
  return Buffer.from(JSON.stringify(doc, null, 2));
}
