/**
 * The fan-out scenario's clients, in their own process so their CPU is not the proxy's:
 * N plain HTTP/1.1 GETs of one blob over N connections at once. Each connection is opened
 * first (in batches, so the listen backlog never overflows), then every request is sent in
 * the same tick, so all N join one cold fill. Bodies are counted, not parsed beyond the
 * header; connection 0's body is also sha256-hashed and compared with the digest (hashing
 * 1,000 x 64 MiB would make this process the bottleneck).
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/fanout-client.ts URL N SIZE DIGEST
 *
 * Prints one JSON line: { ok, failed, firstError, verified, ms }.
 */
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const [url, nArg, sizeArg, digest] = process.argv.slice(2);
if (!url || !nArg || !sizeArg || !digest) throw new Error('usage: fanout-client.ts URL N SIZE DIGEST');
const u = new URL(url);
const n = Number(nArg);
const size = Number(sizeArg);
const BATCH = 100;

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Sends the GET and reads the answer: status 200, Content-Length = size, exactly size body bytes. */
function get(s: Socket, hash: boolean): Promise<boolean | string> {
  return new Promise((resolve) => {
    let head: Buffer | undefined = Buffer.alloc(0);
    let body = 0;
    const h = hash ? createHash('sha256') : undefined;
    const fail = (why: string): void => {
      s.destroy();
      resolve(why);
    };
    s.on('data', (c: Buffer) => {
      if (head) {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        if (!text.startsWith('HTTP/1.1 200')) return fail(`status: ${text.split('\r\n')[0]}`);
        const len = /\r\ncontent-length: *(\d+)/i.exec(text)?.[1];
        if (Number(len) !== size) return fail(`content-length ${len}, expected ${size}`);
        c = head.subarray(end + 4);
        head = undefined;
      }
      body += c.length;
      h?.update(c);
      if (body > size) return fail(`more than ${size} bytes`);
      if (body === size) {
        s.end();
        resolve(h ? `sha256:${h.digest('hex')}` === digest || 'digest mismatch' : true);
      }
    });
    s.once('error', (e) => resolve(`socket error: ${e.message}`));
    s.once('close', () => resolve(`closed after ${body} of ${size} bytes`));
    s.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
  });
}

const sockets: Socket[] = [];
for (let i = 0; i < n; i += BATCH) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, open))));
}
const t0 = performance.now();
const results = await Promise.all(sockets.map((s, i) => get(s, i === 0)));
const ms = performance.now() - t0;
const errors = results.filter((r) => r !== true);
process.stdout.write(`${JSON.stringify({ ok: n - errors.length, failed: errors.length, firstError: errors[0], verified: results[0] === true, ms })}\n`);
process.exit(0);
