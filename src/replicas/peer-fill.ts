/**
 * Reading another replica's live fill over the internal endpoint (replica-service.ts):
 * `GET <address>/fills/<digest>` with a fill token. 200: the bytes as the peer's fill
 * releases them (the last one only after the peer verified the digest), `x-regcache-size`
 * when known; 404: the peer has no live fill of it (committed or failed meanwhile). A peer
 * that cannot be reached is a PeerUnreachable: its lease is stale.
 */
import { request } from 'node:http';
import type { Readable } from 'node:stream';
import { fillToken } from './fill-token.js';

export class PeerUnreachable extends Error {}

export interface PeerFill {
  size: number | undefined;
  body: Readable;
}

export function fetchPeerFill(address: string, digest: string, secret: string, now: number, timeoutMs = 10_000): Promise<PeerFill | undefined> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(`fills/${digest}`, address.endsWith('/') ? address : `${address}/`);
      if (url.protocol !== 'http:') throw new Error(`unsupported peer address ${address}`);
    } catch (err) {
      reject(new PeerUnreachable((err as Error).message));
      return;
    }
    const req = request(url, { method: 'GET', headers: { authorization: `RegcacheFill ${fillToken(secret, digest, now)}` }, timeout: timeoutMs }, (res) => {
      req.setTimeout(0);
      if (res.statusCode === 404) {
        res.resume();
        resolve(undefined);
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        reject(new PeerUnreachable(`peer answered ${res.statusCode}`));
        return;
      }
      const size = res.headers['x-regcache-size'];
      resolve({ size: typeof size === 'string' && /^\d+$/.test(size) ? Number(size) : undefined, body: res });
    });
    req.once('timeout', () => req.destroy(new Error('peer did not answer in time')));
    req.once('error', (err) => reject(new PeerUnreachable(err.message)));
    req.end();
  });
}
