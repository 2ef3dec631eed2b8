/** A throwaway self-signed certificate for 127.0.0.1 (openssl), for regcache's `tls` config. */
import { join } from 'node:path';
import { runChecked } from './children.js';
import { tmpDir } from './tmp.js';

export async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const dir = tmpDir('regcache-cert-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await runChecked('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key };
}
