/**
 * The credential of the internal fill endpoint: HMAC-SHA256 over the digest and an expiry
 * with the replicas' shared secret. The secret itself never travels, a token opens one
 * digest for one minute, and a peer address read from the database learns nothing reusable.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const LIFETIME_MS = 60_000;

const mac = (secret: string, digest: string, expires: number): string =>
  createHmac('sha256', secret).update(`${digest}\n${expires}`).digest('hex');

export function fillToken(secret: string, digest: string, now: number): string {
  const expires = now + LIFETIME_MS;
  return `${expires}.${mac(secret, digest, expires)}`;
}

export function checkFillToken(secret: string, digest: string, token: string | undefined, now: number): boolean {
  const m = /^(\d{1,15})\.([0-9a-f]{64})$/.exec(token ?? '');
  if (!m) return false;
  const expires = Number(m[1]);
  if (expires < now || expires > now + LIFETIME_MS * 2) return false;
  return timingSafeEqual(Buffer.from(m[2]!, 'hex'), Buffer.from(mac(secret, digest, expires), 'hex'));
}
