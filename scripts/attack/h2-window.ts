/**
 * Issue 10 item 1, reproduced: HTTP/2 clients open many streams of a cached 100 MB blob and
 * never open their flow-control window. Before the fix 4 connections x 1,000 streams took
 * regcache from 128 MB to 3.2 GB RSS. This starts a loopback docker-registry and regcache
 * (TLS, h2), warms the blob, runs the attack for `--seconds`, samples regcache's RSS every
 * 250 ms, checks that another client is served meanwhile, and prints one JSON line.
 *
 *   node --import ./scripts/register-ts.mjs scripts/attack/h2-window.ts [--connections 4] [--streams 1000] [--seconds 20]
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import {
  cleanupAll, makeImage, makeLayer, pushImage, startRegcache, startRegistry, stopAllChildren,
} from '../../test/helpers/index.js';
import { selfSignedCert } from '../../test/helpers/tls-cert.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? d : Number(process.argv[i + 1]);
};
const CONNECTIONS = arg('connections', 4);
const STREAMS = arg('streams', 1000);
const SECONDS = arg('seconds', 20);

const rss = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

async function main(): Promise<void> {
  const upstream = await startRegistry();
  const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 100 * 1024 * 1024, seed: 'h2-window' })] });
  await pushImage(upstream.url, 'team/app', 'v1', img);
  const tls = await selfSignedCert();
  const rc = await startRegcache({ config: { tls, upstreams: { 'u.example': { url: upstream.url } } } });
  const origin = `https://127.0.0.1:${rc.port}`;
  const path = `/v2/u.example/team/app/blobs/${img.layers[0]!.digest}`;
  const get = (session: http2.ClientHttp2Session, p: string): Promise<number> => new Promise((resolve, reject) => {
    const s = session.request({ ':path': p });
    let n = 0;
    s.on('data', (c: Buffer) => { n += c.length; });
    s.on('end', () => resolve(n));
    s.on('error', reject);
  });
  const warm = http2.connect(origin, { rejectUnauthorized: false });
  await get(warm, path); // cached now
  const idle = rss(rc.proc.pid!);
  const sessions: http2.ClientHttp2Session[] = [];
  let opened = 0;
  let reset = 0;
  for (let c = 0; c < CONNECTIONS; c++) {
    const s = http2.connect(origin, { rejectUnauthorized: false, settings: { initialWindowSize: 0 }, peerMaxConcurrentStreams: STREAMS });
    s.on('error', () => undefined);
    sessions.push(s);
    for (let i = 0; i < STREAMS; i++) {
      const st = s.request({ ':path': path });
      st.on('response', () => { opened++; });
      st.on('error', () => undefined);
      st.on('close', () => { if (st.rstCode) reset++; });
    }
  }
  let peak = idle;
  const started = Date.now();
  let otherServed = 0;
  const manifestPath = `/v2/u.example/team/app/manifests/v1`;
  while (Date.now() - started < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    peak = Math.max(peak, rss(rc.proc.pid!));
    const n = await get(warm, manifestPath).catch(() => 0);
    if (n > 0) otherServed++;
  }
  const big = await get(warm, path).catch(() => 0);
  for (const s of sessions) s.destroy();
  await new Promise((r) => setTimeout(r, 2000));
  const after = rss(rc.proc.pid!);
  warm.close();
  process.stdout.write(`${JSON.stringify({
    connections: CONNECTIONS, streamsPerConnection: STREAMS, seconds: SECONDS, responsesStarted: opened, streamsReset: reset,
    rssIdleMB: Math.round(idle / 1e6), rssPeakMB: Math.round(peak / 1e6), rssAfterMB: Math.round(after / 1e6),
    otherClientManifestsServed: otherServed, otherClientBlobComplete: big === img.layers[0]!.size,
  })}\n`);
  await rc.stop();
  await upstream.stop();
  await stopAllChildren();
  await cleanupAll();
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  await stopAllChildren();
  await cleanupAll();
  process.exit(1);
});
