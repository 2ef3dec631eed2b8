/** Everything the integration tests use, from one import. */
export * from './children.js';
export * from './connection-counter.js';
export * from './digest.js';
export { startForwarder, type Forwarder, type ForwarderFaults, type ForwarderTarget, type ForwardedRequest } from './forwarder.js';
export * from './htpasswd.js';
export * from './http-probe.js';
export * from './http-stream.js';
export { makeBlob, makeImage, makeIndex, makeLayer, seededBytes, MediaType } from './images.js';
export type { Blob, Image, ImageFormat, ImageOptions, Index, Layer, LayerOptions, LayerSpec, Platform } from './images.js';
export * from './ports.js';
export * from './push.js';
export * from './regcache.js';
export * from './registry.js';
export * from './require-tools.js';
export * from './skopeo.js';
export * from './tar.js';
export * from './tmp.js';
export * from './token-issuer.js';
