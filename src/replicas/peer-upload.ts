/**
 * Moving an upload session between replicas (registry/hosted/upload-sessions.ts): the replica
 * that gets a session's next chunk reads the bytes received so far from the owner's internal
 * listener, `GET <owner>/uploads/<id>`, with a token over `upload:<id>` (fill-token.ts). The
 * answer must be 200 with exactly the recorded size; anything else fails the move (the client
 * retries the chunk; the session is unchanged).
 */
import { request } from 'node:http';
import type { Readable } from 'node:stream';
import { fillToken } from './fill-token.js';

/** The token subject of an upload session (never a valid digest, so never a fill's). */
export const uploadSubject = (id: string): string => `upload:${id}`;

export function fetchPeerUpload(owner: string, id: string, size: number, secret: string, now: number, timeoutMs = 10_000): Promise<Readable> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(`uploads/${encodeURIComponent(id)}`, owner.endsWith('/') ? owner : `${owner}/`);
      if (url.protocol !== 'http:') throw new Error(`unsupported peer address ${owner}`);
    } catch (err) {
      reject(err as Error);
      return;
    }
    const req = request(url, { method: 'GET', headers: { authorization: `RegcacheFill ${fillToken(secret, uploadSubject(id), now)}` }, timeout: timeoutMs }, (res) => {
      req.setTimeout(0);
      if (res.statusCode !== 200 || res.headers['content-length'] !== String(size)) {
        res.resume();
        reject(new Error(`the owner answered ${res.statusCode} with ${res.headers['content-length'] ?? 'no'} length for ${size} bytes`));
        return;
      }
      resolve(res);
    });
    req.once('timeout', () => req.destroy(new Error('the owner did not answer in time')));
    req.once('error', reject);
    req.end();
  });
}
