/**
 * The rules a pushed manifest must pass before anything is stored (OCI distribution spec,
 * "Pushing Manifests"; image-spec for the shapes). Pure: the checks that need the store
 * (referenced blobs and children exist in the repository) are the repository's.
 *  - the body is a JSON object with schemaVersion 2;
 *  - its media type comes from Content-Type, which must agree with the body's `mediaType`
 *    when both are given (one of them must be); it must be a safe application/ type;
 *  - an index has a `manifests` list, an image manifest a `config` and a `layers` list;
 *    every descriptor has a valid digest and a non-negative integer size;
 *  - pushed by digest: the body hashes to that digest (with its algorithm).
 */
import { createHash } from 'node:crypto';
import { OciError } from '../../protocol/errors.js';
import { digestAlgorithm, isValidDigest } from '../../protocol/grammar.js';
import { bareMediaType, DOCKER_MANIFEST_LIST, manifestMediaType, OCI_INDEX, parseManifest, type ManifestRefs } from '../../protocol/media-types.js';

export interface PushedManifest {
  digest: string;
  mediaType: string;
  refs: ManifestRefs;
  isIndex: boolean;
}

const INDEX_TYPES = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);

function invalid(message: string, detail?: unknown): OciError {
  return new OciError('MANIFEST_INVALID', message, detail);
}

function checkDescriptors(list: unknown, where: string): void {
  if (!Array.isArray(list)) throw invalid(`${where} must be a list of descriptors`);
  list.forEach((d, i) => checkDescriptor(d, `${where}[${i}]`));
}

function checkDescriptor(d: unknown, where: string): void {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw invalid(`${where} must be a descriptor object`);
  const x = d as { digest?: unknown; size?: unknown; mediaType?: unknown };
  if (typeof x.digest !== 'string' || !isValidDigest(x.digest)) throw invalid(`${where}.digest is not a valid sha256/sha512 digest`, { at: where });
  if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) throw invalid(`${where}.size must be a non-negative integer`, { at: where });
  if (x.mediaType !== undefined && typeof x.mediaType !== 'string') throw invalid(`${where}.mediaType must be a string`, { at: where });
}

/** A layer a registry need not hold (image-spec "non-distributable"; Docker "foreign" layers). */
export function isNonDistributable(mediaType: string | undefined): boolean {
  return mediaType !== undefined && (mediaType.includes('nondistributable') || mediaType.includes('foreign'));
}

export function checkPushedManifest(body: Buffer, contentType: string | undefined, reference: string, isDigest: boolean): PushedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('the manifest is not valid JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalid('the manifest is not a JSON object');
  const m = doc as { schemaVersion?: unknown; mediaType?: unknown; config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown };
  if (m.schemaVersion !== 2) throw invalid('only schemaVersion 2 manifests are accepted');
  if (m.mediaType !== undefined && typeof m.mediaType !== 'string') throw invalid('mediaType must be a string');
  const header = bareMediaType(contentType);
  const fromHeader = header === '' || header === 'application/json' || header === 'application/octet-stream' ? undefined : header;
  if (fromHeader !== undefined && m.mediaType !== undefined && fromHeader !== m.mediaType) {
    throw invalid(`Content-Type ${fromHeader} does not match the manifest's mediaType ${String(m.mediaType)}`);
  }
  const declared = fromHeader ?? (m.mediaType as string | undefined);
  if (declared === undefined) throw invalid('the manifest media type is unknown: send Content-Type or a mediaType field');
  const mediaType = manifestMediaType(declared);
  if (mediaType === undefined) throw invalid(`${declared.slice(0, 100)} is not a manifest media type`);

  const isIndex = INDEX_TYPES.has(mediaType) || (Array.isArray(m.manifests) && m.config === undefined);
  if (isIndex) {
    checkDescriptors(m.manifests, 'manifests');
  } else {
    checkDescriptor(m.config, 'config');
    checkDescriptors(m.layers, 'layers');
  }
  if (m.subject !== undefined) checkDescriptor(m.subject, 'subject');

  const alg = isDigest ? digestAlgorithm(reference) : 'sha256';
  const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
  if (isDigest && digest !== reference) throw new OciError('DIGEST_INVALID', 'the manifest does not match the digest it is pushed by', { digest: reference, actual: digest });
  const refs = parseManifest(body, mediaType)!;
  return { digest, mediaType, refs, isIndex };
}
