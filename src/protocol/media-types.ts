/** Manifest media types regcache understands, and Accept-header matching. Pure. */

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export const MANIFEST_TYPES = [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX] as const;

/** What regcache asks an upstream for when the client did not say (or said `*\/*`). */
export const DEFAULT_MANIFEST_ACCEPT = MANIFEST_TYPES.join(', ');

/** Strips parameters and whitespace: `application/json; charset=utf-8` -> `application/json`. */
export function bareMediaType(value: string | undefined): string {
  return (value ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The media types listed in Accept headers (possibly several header lines), without q-params. */
export function parseAccept(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const lines = Array.isArray(header) ? header : [header];
  const out: string[] = [];
  for (const line of lines) {
    for (const part of line.split(',')) {
      const [type, ...params] = part.split(';');
      const t = type!.trim().toLowerCase();
      if (!t) continue;
      // q=0 means "not acceptable".
      if (params.some((p) => /^\s*q\s*=\s*0(?:\.0*)?\s*$/.test(p))) continue;
      out.push(t);
    }
  }
  return out;
}

/** Whether a client that sent `accepted` (parsed Accept) takes a manifest of `mediaType`. */
export function accepts(accepted: string[], mediaType: string): boolean {
  if (accepted.length === 0) return true;
  const mt = mediaType.toLowerCase();
  for (const a of accepted) {
    if (a === '*/*' || a === mt) return true;
    if (a.endsWith('/*') && mt.startsWith(a.slice(0, -1))) return true;
  }
  return false;
}

/** True when the client accepts every manifest type regcache knows (so its answer may update a tag). */
export function acceptsAllManifestTypes(accepted: string[]): boolean {
  return MANIFEST_TYPES.every((t) => accepts(accepted, t));
}

/** Digests a manifest references: config, layers, child manifests, subject. */
export interface ManifestRefs {
  mediaType: string;
  blobs: Array<{ digest: string; size?: number; mediaType?: string }>;
  manifests: Array<{ digest: string; size?: number; mediaType?: string }>;
  subject?: string;
  /** The manifest's artifactType, or (image manifests) its config media type, as the referrers API reports it. */
  artifactType?: string;
}

interface Descriptor { digest?: unknown; size?: unknown; mediaType?: unknown }

function desc(d: unknown): { digest: string; size?: number; mediaType?: string } | undefined {
  if (!d || typeof d !== 'object') return undefined;
  const x = d as Descriptor;
  if (typeof x.digest !== 'string') return undefined;
  const out: { digest: string; size?: number; mediaType?: string } = { digest: x.digest };
  if (typeof x.size === 'number') out.size = x.size;
  if (typeof x.mediaType === 'string') out.mediaType = x.mediaType;
  return out;
}

/**
 * Parses a manifest body. `headerType` is the upstream's Content-Type, used when the body
 * has no mediaType field. Returns undefined when the body is not a JSON object.
 */
export function parseManifest(body: Buffer, headerType: string): ManifestRefs | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const m = doc as { mediaType?: unknown; config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown; artifactType?: unknown };
  let mediaType = typeof m.mediaType === 'string' ? m.mediaType : bareMediaType(headerType);
  if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    mediaType = Array.isArray(m.manifests) ? OCI_INDEX : OCI_MANIFEST;
  }
  const out: ManifestRefs = { mediaType, blobs: [], manifests: [] };
  const config = desc(m.config);
  if (config) out.blobs.push(config);
  if (Array.isArray(m.layers)) for (const l of m.layers) { const d = desc(l); if (d) out.blobs.push(d); }
  if (Array.isArray(m.manifests)) for (const c of m.manifests) { const d = desc(c); if (d) out.manifests.push(d); }
  const subject = desc(m.subject);
  if (subject) out.subject = subject.digest;
  if (typeof m.artifactType === 'string') out.artifactType = m.artifactType;
  else if (config?.mediaType) out.artifactType = config.mediaType;
  return out;
}

/** RFC 6838 restricted-name characters: no spaces, quotes, CR or LF. */
const SAFE_TYPE = /^application\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;

/**
 * A media type regcache may store and send as a manifest's Content-Type: a registered
 * manifest type, or a well-formed application/ type (artifacts). Never text/html or a value
 * with control characters, whatever an upstream says.
 */
export function manifestMediaType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if ((MANIFEST_TYPES as readonly string[]).includes(value)) return value;
  if (value === 'application/json' || value === 'application/octet-stream') return undefined;
  return SAFE_TYPE.test(value) ? value : undefined;
}
