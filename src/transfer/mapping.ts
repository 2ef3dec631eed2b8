/**
 * The mapping grammar of `regcache copy` (oc image mirror's): one mapping per line,
 * `SRC DST [DST...]` or `SRC=DST`; `#` starts a comment; blank lines are skipped. A source
 * `repo:*`, or a repository without tag or digest, copies every tag and needs repositories
 * as destinations; `repo:tag` and `repo@digest` copy one image, to the tag written at the
 * destination, else the source's tag (or by digest only). Pure: errors name file and line.
 */
import { formatRef, parseImageRef, ReferenceError, repoKey, type ImageRef } from './reference.js';

export interface Origin {
  /** The file as given (`-` is stdin, `command line` the arguments). */
  file: string;
  line: number;
}

export interface Mapping {
  source: ImageRef;
  destinations: ImageRef[];
  origin: Origin;
}

export function where(o: Origin): string {
  return `${o.file}:${o.line}`;
}

/** One or more mapping errors, each naming its file and line. */
export class MappingError extends Error {
  override name = 'MappingError';
  constructor(readonly problems: Array<{ origin: Origin; message: string }>) {
    super(problems.map((p) => `${where(p.origin)}: ${p.message}`).join('\n'));
  }
}

function ref(text: string, origin: Origin, problems: MappingError['problems']): ImageRef | undefined {
  try {
    return parseImageRef(text);
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    problems.push({ origin, message: err.message });
    return undefined;
  }
}

/** Normalises one mapping's references: wildcard sources, inherited destination tags. */
function normalise(src: ImageRef, dsts: ImageRef[], origin: Origin, problems: MappingError['problems']): Mapping | undefined {
  const source: ImageRef = src.tag === undefined && src.digest === undefined ? { ...src, allTags: true } : src;
  const destinations: ImageRef[] = [];
  let ok = true;
  for (const d of dsts) {
    if (d.digest !== undefined) {
      problems.push({ origin, message: `destination ${formatRef(d)} names a digest: a destination is a repository or a tag` });
      ok = false;
      continue;
    }
    if (source.allTags) {
      if (d.tag !== undefined) {
        problems.push({ origin, message: `source ${formatRef(source)} copies every tag, so destination ${formatRef(d)} must be a repository (no tag)` });
        ok = false;
        continue;
      }
      destinations.push({ registry: d.registry, repo: d.repo, allTags: true });
      continue;
    }
    if (d.allTags) {
      problems.push({ origin, message: `destination ${formatRef(d)} uses * but source ${formatRef(source)} is one image` });
      ok = false;
      continue;
    }
    const tag = d.tag ?? source.tag;
    destinations.push(tag === undefined ? { registry: d.registry, repo: d.repo } : { registry: d.registry, repo: d.repo, tag });
  }
  return ok ? { source, destinations, origin } : undefined;
}

/** Parses the tokens of one mapping; undefined (with problems recorded) when invalid. */
function parseTokens(tokens: string[], origin: Origin, problems: MappingError['problems']): Mapping | undefined {
  let srcText: string;
  let dstTexts: string[];
  if (tokens.length === 1 && tokens[0]!.includes('=')) {
    const [s, ...d] = tokens[0]!.split('=');
    if (d.length !== 1 || !s || !d[0]) {
      problems.push({ origin, message: `${JSON.stringify(tokens[0])}: write SRC=DST with one source and one destination` });
      return undefined;
    }
    srcText = s;
    dstTexts = [d[0]];
  } else {
    if (tokens.some((t) => t.includes('='))) {
      problems.push({ origin, message: 'write either SRC=DST or SRC DST [DST...], not both on one line' });
      return undefined;
    }
    if (tokens.length < 2) {
      problems.push({ origin, message: `${JSON.stringify(tokens.join(' '))}: a mapping needs a source and at least one destination` });
      return undefined;
    }
    [srcText, ...dstTexts] = tokens as [string, ...string[]];
  }
  const before = problems.length;
  const src = ref(srcText, origin, problems);
  const dsts = dstTexts.map((t) => ref(t, origin, problems));
  if (!src || problems.length > before) return undefined;
  return normalise(src, dsts as ImageRef[], origin, problems);
}

/** Parses a mapping file's text. Throws MappingError listing every bad line. */
export function parseMappingText(text: string, file: string): Mapping[] {
  const out: Mapping[] = [];
  const problems: MappingError['problems'] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    // '#' cannot occur in a reference, so it always starts a comment.
    const body = lines[i]!.split('#')[0]!.trim();
    if (body === '') continue;
    const m = parseTokens(body.split(/\s+/), { file, line: i + 1 }, problems);
    if (m) out.push(m);
  }
  if (problems.length) throw new MappingError(problems);
  return out;
}

/**
 * Mappings from command-line arguments: each `SRC=DST` argument is one mapping; the other
 * arguments, in order, form one `SRC DST [DST...]` mapping.
 */
export function parseMappingArgs(args: string[], file = 'command line'): Mapping[] {
  const out: Mapping[] = [];
  const problems: MappingError['problems'] = [];
  const plain: string[] = [];
  args.forEach((a, i) => {
    if (a.includes('=')) {
      const m = parseTokens([a], { file, line: i + 1 }, problems);
      if (m) out.push(m);
    } else plain.push(a);
  });
  if (plain.length) {
    const m = parseTokens(plain, { file, line: args.indexOf(plain[0]!) + 1 }, problems);
    if (m) out.push(m);
  }
  if (problems.length) throw new MappingError(problems);
  return out;
}

/** One destination a copy writes: a concrete tag, every tag of a source, or a digest only. */
export interface Write {
  source: ImageRef;
  destination: ImageRef;
  origin: Origin;
}

/** What a destination occupies: `registry/repo:tag`, `registry/repo:*`, or nothing (by digest). */
function slot(d: ImageRef): string | undefined {
  if (d.allTags) return `${repoKey(d)}:*`;
  return d.tag === undefined ? undefined : `${repoKey(d)}:${d.tag}`;
}

/**
 * Refuses, before anything is copied, a destination equal to its source and a destination
 * tag written twice. Runs on the mappings as written (two wildcards into one repository
 * overlap) and again on the expanded plan (a wildcard's tags against explicit ones).
 */
export function checkWrites(writes: Write[]): void {
  const problems: MappingError['problems'] = [];
  const seen = new Map<string, Write>();
  for (const w of writes) {
    const s = w.source;
    const d = w.destination;
    if (repoKey(s) === repoKey(d) && (d.allTags || (d.tag !== undefined && d.tag === s.tag) || (d.tag === undefined && s.digest !== undefined))) {
      problems.push({ origin: w.origin, message: `destination ${formatRef(d)} is its own source` });
      continue;
    }
    const key = slot(d);
    if (key === undefined) continue;
    const first = seen.get(key);
    if (first) {
      problems.push({ origin: w.origin, message: `destination ${key} is also written by ${where(first.origin)} (${formatRef(first.source)})` });
      continue;
    }
    seen.set(key, w);
  }
  if (problems.length) throw new MappingError(problems);
}

/** The writes of a list of mappings, one per destination. */
export function writesOf(mappings: Mapping[]): Write[] {
  return mappings.flatMap((m) => m.destinations.map((destination) => ({ source: m.source, destination, origin: m.origin })));
}
