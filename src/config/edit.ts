/**
 * In-place edits of the YAML config for `regcache mirror add|remove`.
 *
 * The file is a hand-maintained document, so an edit touches only the lines of the entry it
 * adds or removes: every other byte (comments, their alignment, blank lines, key order,
 * quoting) stays as it was. The positions come from yaml's Document API (node ranges); the
 * result is parsed back and must equal the intended data exactly. When the layout is one
 * the line splice does not handle (flow mappings, odd indentation), the edit is made with
 * Document setIn/deleteIn instead, which keeps comments and order but may normalise spacing.
 *
 * `${VAR}` references are never expanded into the written text: validation runs on an
 * env-expanded copy (parseConfigText), the edit on the original text.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, fchmodSync, fchownSync, fsyncSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isMap, isScalar, parse, parseDocument, type Document, type Pair, type YAMLMap } from 'yaml';
import { ConfigError } from './errors.js';
import { isPort, parseUpstreamUrl, portClaims, registryHostProblem } from './endpoint-rules.js';
import { parseConfigText } from './load.js';
import { portIsFree, type PortProbe } from './port-probe.js';
import type { Config, UpstreamConfig } from './types.js';

export class EditError extends Error {
  override name = 'EditError';
}

/** First port handed out by `mirror add` (docker.io 6000, the next host 6001, ...). */
export const FIRST_MIRROR_PORT = 6000;

/** Where the well-known registries really serve the API. Any other host: `https://<host>`. */
export const KNOWN_REGISTRY_URLS: Readonly<Record<string, string>> = {
  'docker.io': 'https://registry-1.docker.io',
  'ghcr.io': 'https://ghcr.io',
  'quay.io': 'https://quay.io',
  'registry.k8s.io': 'https://registry.k8s.io',
  'gcr.io': 'https://gcr.io',
  'mcr.microsoft.com': 'https://mcr.microsoft.com',
  'public.ecr.aws': 'https://public.ecr.aws',
};

export function defaultUpstreamUrl(host: string): string {
  return KNOWN_REGISTRY_URLS[host] ?? `https://${host}`;
}

/** A registry host as image names and containerd's certs.d use it: lowercase `host[:port]`. */
export function checkRegistryHost(host: string): void {
  const problem = registryHostProblem(host);
  if (problem) throw new EditError(problem);
}

export function checkUpstreamUrl(url: string): void {
  const r = parseUpstreamUrl(url);
  if ('problem' in r) throw new EditError(`invalid url: ${r.problem}`);
}

/** Ports already taken: upstream listeners, the main listener, the metrics listener. */
export function heldPorts(cfg: Config): Map<number, string> {
  const held = new Map<number, string>();
  for (const c of portClaims(cfg)) if (!held.has(c.port)) held.set(c.port, c.label);
  return held;
}

/** The lowest port from `start` (6000) that no upstream, `listen` or `metrics.listen` holds, nor `skip`. */
export function nextFreePort(cfg: Config, start = FIRST_MIRROR_PORT, skip: ReadonlySet<number> = new Set()): number {
  const held = heldPorts(cfg);
  for (let p = start; p <= 65535; p++) if (!held.has(p) && !skip.has(p)) return p;
  throw new EditError(`no free port from ${start} to 65535`);
}

export interface NewUpstream {
  host: string;
  url: string;
  port?: number | undefined;
}

// ---------------------------------------------------------------------------------------
// Text-level edits

type Raw = Record<string, unknown>;

function parseForEdit(text: string): Document.Parsed {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) throw new EditError(`malformed YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const c = doc.contents;
  if (c !== null && !isMap(c) && !(isScalar(c) && c.value === null)) throw new EditError('the config is not a YAML mapping');
  return doc;
}

/** The `upstreams` pair of the top-level mapping, if present. */
function upstreamsPair(doc: Document.Parsed): Pair | undefined {
  if (!isMap(doc.contents)) return undefined;
  return doc.contents.items.find((p) => isScalar(p.key) && p.key.value === 'upstreams') as Pair | undefined;
}

function upstreamsMap(doc: Document.Parsed): YAMLMap | null | undefined {
  const pair = upstreamsPair(doc);
  if (!pair) return undefined;
  const v = pair.value;
  if (v === null || (isScalar(v) && v.value === null)) return null;
  if (!isMap(v)) throw new EditError('upstreams is not a mapping');
  return v;
}

function hostKeys(map: YAMLMap | null | undefined): string[] {
  if (!map) return [];
  return map.items.map((p) => (isScalar(p.key) ? String(p.key.value) : ''));
}

/** Plain YAML scalar when unambiguous, else a double-quoted one. */
function scalar(s: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._~\/?&=%+@-]*(?::[A-Za-z0-9._~\/?&=%+@-]+)*$/.test(s)) {
    try {
      if (parse(s) === s) return s;
    } catch { /* fall through to quoting */ }
  }
  return JSON.stringify(s);
}

/** Keys with a `:` are quoted for readability (`"myreg:5000":`), though plain would parse. */
function keyScalar(s: string): string {
  return s.includes(':') ? JSON.stringify(s) : scalar(s);
}

function entryLines(up: NewUpstream, indent: number, step: number, eol: string): string {
  const a = ' '.repeat(indent);
  const b = ' '.repeat(indent + step);
  let s = `${a}${keyScalar(up.host)}:${eol}${b}url: ${scalar(up.url)}${eol}`;
  if (up.port !== undefined) s += `${b}port: ${up.port}${eol}`;
  return s;
}

function lineStartOf(text: string, pos: number): number {
  return text.lastIndexOf('\n', pos - 1) + 1;
}

/** Start of the line after the one containing `pos` (text.length at the end). */
function nextLineStart(text: string, pos: number): number {
  const nl = text.indexOf('\n', pos);
  return nl === -1 ? text.length : nl + 1;
}

/** Column of the first non-space character of the line starting at `ls`; -1 when blank. */
function indentOf(text: string, ls: number): number {
  let i = ls;
  while (text[i] === ' ') i++;
  const c = text[i];
  if (c === undefined || c === '\n' || c === '\r') return -1;
  return i - ls;
}

/**
 * The lines of a block-mapping entry whose key starts at `keyPos`: its key line and every
 * following line indented deeper (blank lines inside included, trailing blank lines not).
 * Undefined when the key does not start its line (e.g. `? ` or same-line layouts).
 */
function entrySpan(text: string, keyPos: number): { start: number; end: number; indent: number } | undefined {
  const start = lineStartOf(text, keyPos);
  if (text.slice(start, keyPos).trim() !== '') return undefined;
  const indent = keyPos - start;
  let end = nextLineStart(text, keyPos);
  let pos = end;
  while (pos < text.length) {
    const ind = indentOf(text, pos);
    if (ind !== -1 && ind <= indent) break;
    pos = nextLineStart(text, pos);
    if (ind !== -1) end = pos;
  }
  return { start, end, indent };
}

function eolOf(text: string): string {
  return text.includes('\r\n') ? '\r\n' : '\n';
}

function splicedAdd(text: string, doc: Document.Parsed, up: NewUpstream): string | undefined {
  const eol = eolOf(text);
  const pair = upstreamsPair(doc);
  if (!pair) {
    if (isMap(doc.contents) && doc.contents.flow) return undefined;
    const sep = text === '' || text.endsWith('\n') ? '' : eol;
    return `${text}${sep}upstreams:${eol}${entryLines(up, 2, 2, eol)}`;
  }
  const map = upstreamsMap(doc);
  const key = pair.key as { range?: [number, number, number] | null };
  if (!key.range) return undefined;
  if (map === null) {
    // `upstreams:` with nothing after it but maybe a comment: the entry goes below that line.
    const keySpan = entrySpan(text, key.range[0]);
    if (!keySpan) return undefined;
    const lineEnd = nextLineStart(text, key.range[0]);
    if (!/^\s*:[ \t]*(#.*)?\r?\n?$/.test(text.slice(key.range[1], lineEnd))) return undefined;
    const sep = lineEnd === text.length && !text.endsWith('\n') ? eol : '';
    return text.slice(0, lineEnd) + sep + entryLines(up, keySpan.indent + 2, 2, eol) + text.slice(lineEnd);
  }
  if (!map || map.flow || map.items.length === 0) return undefined;
  const first = map.items[0]!;
  const last = map.items[map.items.length - 1]!;
  const firstKey = first.key as { range?: [number, number, number] | null };
  const lastKey = last.key as { range?: [number, number, number] | null };
  if (!firstKey.range || !lastKey.range) return undefined;
  const firstSpan = entrySpan(text, firstKey.range[0]);
  const lastSpan = entrySpan(text, lastKey.range[0]);
  if (!firstSpan || !lastSpan) return undefined;
  // Indentation of an entry's own keys, learnt from the first entry when it is a block map.
  let step = 2;
  const fv = first.value;
  if (isMap(fv) && !fv.flow && fv.items[0]) {
    const k = fv.items[0].key as { range?: [number, number, number] | null };
    if (k.range) {
      const col = k.range[0] - lineStartOf(text, k.range[0]);
      if (col > firstSpan.indent) step = col - firstSpan.indent;
    }
  }
  const at = lastSpan.end;
  let sep = at === text.length && !text.endsWith('\n') ? eol : '';
  // Entries separated by blank lines: keep that style.
  if (map.items.length > 1) {
    let ls = lastSpan.start;
    while (ls > 0) {
      const prev = lineStartOf(text, ls - 1);
      if (indentOf(text, prev) === -1) {
        sep += eol;
        break;
      }
      if (indentOf(text, prev) !== lastSpan.indent || !text.slice(prev, ls).trimStart().startsWith('#')) break;
      ls = prev;
    }
  }
  return text.slice(0, at) + sep + entryLines(up, firstSpan.indent, step, eol) + text.slice(at);
}

function splicedRemove(text: string, doc: Document.Parsed, host: string): string | undefined {
  const map = upstreamsMap(doc);
  if (!map || map.flow) return undefined;
  const pair = map.items.find((p) => isScalar(p.key) && String(p.key.value) === host);
  const key = pair?.key as { range?: [number, number, number] | null } | undefined;
  if (!key?.range) return undefined;
  const span = entrySpan(text, key.range[0]);
  if (!span) return undefined;
  let { start, end } = span;
  // Comment lines right above a later entry (same indent, no blank line between) describe
  // it and go with it. Above the first entry they may head the whole list, so they stay.
  if (map.items[0] !== pair) {
    while (start > 0) {
      const prev = lineStartOf(text, start - 1);
      const line = text.slice(prev, start);
      if (indentOf(text, prev) !== span.indent || !line.trimStart().startsWith('#')) break;
      start = prev;
    }
  }
  // Do not leave two blank lines where the entry sat between two blank lines.
  const blankBefore = start > 0 && indentOf(text, lineStartOf(text, start - 1)) === -1;
  if (blankBefore && end < text.length && indentOf(text, end) === -1) end = nextLineStart(text, end);
  return text.slice(0, start) + text.slice(end);
}

/** Raw data with `upstreams: null` and `upstreams: {}` treated alike. */
function normalised(data: unknown): string {
  const d = (data ?? {}) as Raw;
  if (d.upstreams === null) return JSON.stringify({ ...d, upstreams: {} });
  return JSON.stringify(d);
}

function sameData(text: string, expected: unknown): boolean {
  try {
    return normalised(parse(text, { uniqueKeys: true })) === normalised(expected);
  } catch {
    return false;
  }
}

function docString(doc: Document.Parsed): string {
  return doc.toString({ lineWidth: 0 });
}

function entryValue(up: NewUpstream): Raw {
  return up.port === undefined ? { url: up.url } : { url: up.url, port: up.port };
}

/**
 * Adds `upstreams.<host>: {url, port}` as the last upstream. Text-level only: checks that the
 * host is new and the result well-formed, not that the config is valid (see planAdd).
 */
export function addUpstream(text: string, up: NewUpstream): string {
  checkRegistryHost(up.host);
  checkUpstreamUrl(up.url);
  const doc = parseForEdit(text);
  if (hostKeys(upstreamsMap(doc)).includes(up.host)) throw new EditError(`upstream ${up.host} already exists`);
  const before = (doc.toJS() ?? {}) as Raw;
  const ups = (before.upstreams ?? {}) as Raw;
  const expected = { ...before, upstreams: { ...ups, [up.host]: entryValue(up) } };

  const spliced = splicedAdd(text, doc, up);
  if (spliced !== undefined && sameData(spliced, expected)) return spliced;

  if (upstreamsMap(doc) === null || doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    doc.set('upstreams', doc.createNode({}));
  }
  doc.setIn(['upstreams', up.host], doc.createNode(entryValue(up)));
  const out = docString(doc);
  if (!sameData(out, expected)) throw new EditError(`could not add ${up.host} to this document layout; edit the file by hand`);
  return out;
}

/** Removes `upstreams.<host>` and the lines of its entry; comments outside the entry stay. */
export function removeUpstream(text: string, host: string): string {
  const doc = parseForEdit(text);
  if (!hostKeys(upstreamsMap(doc)).includes(host)) throw new EditError(`upstream ${host} is not configured`);
  const before = (doc.toJS() ?? {}) as Raw;
  const ups = { ...(before.upstreams as Raw) };
  delete ups[host];
  const expected = { ...before, upstreams: ups };

  const spliced = splicedRemove(text, doc, host);
  if (spliced !== undefined && sameData(spliced, expected)) return spliced;

  doc.deleteIn(['upstreams', host]);
  const out = docString(doc);
  if (!sameData(out, expected)) throw new EditError(`could not remove ${host} from this document layout; edit the file by hand`);
  return out;
}

// ---------------------------------------------------------------------------------------
// Validated edits: what `mirror add|remove` run

export interface AddRequest {
  host: string;
  /** Default: KNOWN_REGISTRY_URLS, else https://<host>. */
  url?: string | undefined;
  /** Default: nextFreePort. */
  port?: number | undefined;
  /** Add without a dedicated port (reachable by ns routing only). */
  noPort?: boolean | undefined;
}

export interface EditPlan {
  /** The new file text, validated. */
  text: string;
  /** The config the new text validates to. */
  config: Config;
  /** The entry added or removed, as validated. */
  upstream: UpstreamConfig;
}

/** Validates the current text; an invalid config is never edited. */
function currentConfig(text: string, env: NodeJS.ProcessEnv, file: string): Config {
  try {
    return parseConfigText(text, env, file);
  } catch (err) {
    if (err instanceof ConfigError) throw new EditError(`${file} is not a valid config, so it was left unchanged: ${err.message}`);
    throw err;
  }
}

function newConfig(text: string, env: NodeJS.ProcessEnv, file: string): Config {
  try {
    return parseConfigText(text, env, file);
  } catch (err) {
    if (err instanceof ConfigError) throw new EditError(`the change would make ${file} invalid (${err.message}); left unchanged`);
    throw err;
  }
}

export function planAdd(text: string, env: NodeJS.ProcessEnv, req: AddRequest, file = 'config'): EditPlan {
  const cfg = currentConfig(text, env, file);
  checkRegistryHost(req.host);
  const existing = cfg.upstreams.find((u) => u.host === req.host);
  if (existing) {
    const port = existing.port === undefined ? '' : `, port ${existing.port}`;
    throw new EditError(`upstream ${req.host} already exists in ${file} (${existing.url}${port}); remove it first to change it`);
  }
  const url = req.url ?? defaultUpstreamUrl(req.host);
  checkUpstreamUrl(url);
  let port: number | undefined;
  if (req.noPort) {
    if (req.port !== undefined) throw new EditError('--port and --no-port exclude each other');
  } else if (req.port !== undefined) {
    if (!isPort(req.port)) throw new EditError(`invalid port ${req.port}: use 1-65535`);
    const holder = heldPorts(cfg).get(req.port);
    if (holder) throw new EditError(`port ${req.port} is already used by ${holder}`);
    port = req.port;
  } else {
    port = nextFreePort(cfg);
  }
  const out = addUpstream(text, { host: req.host, url, port });
  const config = newConfig(out, env, file);
  const upstream = config.upstreams.find((u) => u.host === req.host);
  if (!upstream) throw new EditError(`internal error: ${req.host} missing after the edit; ${file} left unchanged`);
  return { text: out, config, upstream };
}

/** How many ports `planAddOnHost` tries before giving up. */
const MAX_PORT_PROBES = 200;

/**
 * planAdd, and the port must also be free on the machine: an explicit port is bound once to
 * check it; an allocated one is the first from 6000 that the config does not hold and the OS
 * lets us bind. Probes run on `listen`'s host, where upstream ports listen.
 */
export async function planAddOnHost(
  text: string, env: NodeJS.ProcessEnv, req: AddRequest, file = 'config', probe: PortProbe = portIsFree,
): Promise<EditPlan> {
  if (req.noPort) return planAdd(text, env, req, file);
  const cfg = currentConfig(text, env, file);
  const host = cfg.listen.host;
  if (req.port !== undefined) {
    const plan = planAdd(text, env, req, file);
    if (!(await probe(host, req.port))) {
      throw new EditError(`port ${req.port} is already in use on ${host} by another process; choose another --port, or omit --port to pick a free one`);
    }
    return plan;
  }
  const busy = new Set<number>();
  for (let i = 0; i < MAX_PORT_PROBES; i++) {
    const port = nextFreePort(cfg, FIRST_MIRROR_PORT, busy);
    if (await probe(host, port)) return planAdd(text, env, { ...req, port }, file);
    busy.add(port);
  }
  throw new EditError(`no bindable port on ${host} among the first ${MAX_PORT_PROBES} free ones from ${FIRST_MIRROR_PORT}; pass --port`);
}

export function planRemove(text: string, env: NodeJS.ProcessEnv, host: string, file = 'config'): EditPlan {
  const cfg = currentConfig(text, env, file);
  const upstream = cfg.upstreams.find((u) => u.host === host);
  if (!upstream) {
    const known = cfg.upstreams.map((u) => u.host).join(', ') || 'none';
    throw new EditError(`upstream ${host} is not configured in ${file} (configured: ${known})`);
  }
  if (cfg.defaultUpstream === host) {
    throw new EditError(
      `${host} is the defaultUpstream in ${file}; set defaultUpstream to another upstream (or delete that line) first, then remove it`,
    );
  }
  const out = removeUpstream(text, host);
  const config = newConfig(out, env, file);
  return { text: out, config, upstream };
}

// ---------------------------------------------------------------------------------------
// Atomic file replacement

/**
 * Replaces `file` so a reader sees the old or the new content, never a mix, and a crash
 * leaves one of the two: write a temp file in the same directory (rename is atomic only
 * within one file system), fsync it, rename it over the target, fsync the directory so the
 * rename itself is durable. A symlink is followed so the link stays a link. The mode (and
 * owner, when permitted) of an existing file are kept: the config may hold passwords.
 */
export function writeFileAtomic(file: string, content: string, opts: { mode?: number } = {}): void {
  let target = file;
  try {
    target = realpathSync(file);
  } catch { /* new file */ }
  let mode = opts.mode;
  let owner: { uid: number; gid: number } | undefined;
  try {
    const st = statSync(target);
    mode ??= st.mode & 0o7777;
    owner = { uid: st.uid, gid: st.gid };
  } catch { /* new file */ }
  mode ??= 0o644;
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      const buf = Buffer.from(content, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fchmodSync(fd, mode); // openSync's mode is filtered by the umask
      if (owner) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch { /* not permitted: keep ours */ }
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch { /* already gone */ }
    throw err;
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch { /* some platforms cannot fsync a directory */ }
}
