/**
 * bcrypt htpasswd lines for docker-registry's htpasswd auth (it accepts only bcrypt).
 * The hash comes from perl's crypt(), which on Debian is libxcrypt and supports `$2b$`; perl-base is an
 * Essential package, so no npm dependency and no apache2-utils are needed.
 */
import { randomBytes } from 'node:crypto';
import { runCommand } from './children.js';

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random 22-character bcrypt salt (the last character carries only 2 significant bits). */
function bcryptSalt(): string {
  const rnd = randomBytes(22);
  let s = '';
  for (let i = 0; i < 21; i++) s += BCRYPT_ALPHABET[rnd[i]! % 64];
  return s + '.Oeu'[rnd[21]! % 4];
}

/** `$2b$<cost>$...` bcrypt hash of `password` (cost 4..31; low costs keep tests fast). */
export async function bcryptHash(password: string, cost = 5): Promise<string> {
  const setting = `$2b$${String(cost).padStart(2, '0')}$${bcryptSalt()}`;
  const r = await runCommand('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', '--', password, setting], { timeoutMs: 30_000 });
  const hash = r.stdout.trim();
  if (r.code !== 0 || !/^\$2b\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
    throw new Error(`bcrypt via perl crypt() failed (code ${r.code}, got ${JSON.stringify(hash)}): ${r.stderr.trim()} — libcrypt without bcrypt support?`);
  }
  return hash;
}

/** One `user:hash` line for an htpasswd file. */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  if (user.includes(':')) throw new Error(`htpasswd user must not contain ':': ${user}`);
  return `${user}:${await bcryptHash(password)}`;
}
