// The least a Node.js process can do to copy one single-platform image between two plain-HTTP registries:
// undici alone, no config, no retries, no checks beyond status codes, every blob in one monolithic PUT.
// Scenario 9 times it beside `regcache copy` and `skopeo copy` as the floor for any copier written for Node
// on the machine at hand (process start-up plus undici's own per-byte cost), so the ratio to skopeo can be
// read against what Node itself allows. Not a tool: a measuring stick.
//
//   node scripts/bench/minimal-copier.mjs SRC_HOST DST_HOST REPO TAG
// Only undici's Agent and request API, loaded by regcache's own module for that (it imports
// nothing else): undici's index also loads fetch, WebSocket and the rest (~70 ms more start-up).
import { Agent } from '../../dist/upstream/undici.js';

const [src, dst, repo, tag] = process.argv.slice(2);
const agent = new Agent({ connections: 16 });
const call = (host, method, path, headers = {}, body) => agent.request({ origin: `http://${host}`, path, method, headers, body });
const ok = async (res, want, what) => {
  await res.body.dump();
  if (res.statusCode !== want) throw new Error(`${what}: HTTP ${res.statusCode}`);
};

const got = await call(src, 'GET', `/v2/${repo}/manifests/${tag}`, { accept: 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' });
if (got.statusCode !== 200) throw new Error(`manifest: HTTP ${got.statusCode}`);
const type = got.headers['content-type'];
const raw = Buffer.from(await got.body.arrayBuffer());
const manifest = JSON.parse(raw.toString('utf8'));
await Promise.all([manifest.config, ...manifest.layers].map(async (blob) => {
  const [post, body] = await Promise.all([call(dst, 'POST', `/v2/${repo}/blobs/uploads/`), call(src, 'GET', `/v2/${repo}/blobs/${blob.digest}`)]);
  await ok(post, 202, 'POST');
  if (body.statusCode !== 200) throw new Error(`GET ${blob.digest}: HTTP ${body.statusCode}`);
  const url = new URL(post.headers.location, `http://${dst}`);
  url.searchParams.set('digest', blob.digest);
  await ok(await call(dst, 'PUT', url.pathname + url.search, { 'content-length': String(blob.size), 'content-type': 'application/octet-stream' }, body.body), 201, `PUT ${blob.digest}`);
}));
await ok(await call(dst, 'PUT', `/v2/${repo}/manifests/${tag}`, { 'content-type': type }, raw), 201, 'manifest PUT');
await agent.close();
