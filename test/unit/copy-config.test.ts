import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCopyMappings } from '../../src/config/schema/copy.js';
import { validateConfig } from '../../src/config/validate.js';
import { configError as error } from './config-error.js';

const dir = mkdtempSync(join(tmpdir(), 'regcache-copy-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const M = 'quay.io/org/app:v1 127.0.0.1:5000/mirror/app:v1';

describe('copy jobs config (copy.<name>)', () => {
  it('a job gets the sync jobs\' schedule defaults and the copy flags off', () => {
    expect(validateConfig({ copy: { nightly: { mappings: [M] } } }).copy).toEqual([{
      name: 'nightly', mappings: [M], files: [], interval: 86_400_000, timeout: 3_600_000, enabled: true, retries: 3, retryDelay: 60_000,
      dryRun: false, platforms: [], keepManifestList: false, continueOnError: false, skipMissing: false, force: false, insecure: [],
    }]);
  });

  it('takes mappings as one multi-line string, files, flags and a start time', () => {
    const f = file('ok.txt', `# mirror\nquay.io/org/db:* 127.0.0.1:5000/mirror/db\n`);
    const j = validateConfig({ copy: { a: {
      mappings: `${M}\n# comment\n\nquay.io/org/x:1=127.0.0.1:5000/x:1\n`, files: [f], interval: '6h', startAt: '2026-07-01T02:00:00Z',
      dryRun: true, platforms: 'linux/amd64, linux/arm64/v8', keepManifestList: true, continueOnError: true, skipMissing: true, insecure: '127.0.0.1:5000, Reg.Local',
    } } }).copy[0]!;
    expect(j).toMatchObject({
      files: [f], interval: 21_600_000, startAt: Date.parse('2026-07-01T02:00:00Z'), dryRun: true, platforms: ['linux/amd64', 'linux/arm64/v8'],
      keepManifestList: true, continueOnError: true, skipMissing: true, insecure: ['127.0.0.1:5000', 'reg.local'],
    });
    const mappings = readCopyMappings(j);
    expect(mappings.map((m) => `${m.origin.file}:${m.origin.line}`)).toEqual(['copy.a.mappings:1', 'copy.a.mappings:4', `${f}:2`]);
  });

  const auth = file('auth.json', JSON.stringify({ auths: { '127.0.0.1:5000': { auth: Buffer.from('u:p').toString('base64') } } }));
  const badFile = file('bad.txt', 'quay.io/org/app:v1\n\nnginx:1 127.0.0.1:5000/x\n');

  it.each<[string, Record<string, unknown>, RegExp | string]>([
    ['a bad name', { 'bad name!': { mappings: [M] } }, /^copy\.bad name!: invalid name/],
    ['no mappings at all', { a: {} }, 'copy.a: needs `mappings` or `files`'],
    ['only comments', { a: { mappings: ['# nothing'] } }, 'copy.a: needs `mappings` or `files`'],
    ['a bad inline line, with its line', { a: { mappings: [M, 'quay.io/org/app:v1'] } }, /^copy\.a\.mappings: copy\.a\.mappings:2: /],
    ['a bad line in a file, with file and line', { a: { files: [badFile] } }, new RegExp(`^copy\\.a\\.files: ${badFile}:1: .*; ${badFile}:3: `)],
    ['a missing file', { a: { files: [join(dir, 'nope.txt')] } }, `copy.a.files: ${join(dir, 'nope.txt')}: no such file`],
    ['a destination written twice', { a: { mappings: [M, 'quay.io/org/other:v1 127.0.0.1:5000/mirror/app:v1'] } }, /^copy\.a\.mappings: copy\.a\.mappings:2: destination 127\.0\.0\.1:5000\/mirror\/app:v1 is also written by copy\.a\.mappings:1/],
    ['a wrong type of mappings', { a: { mappings: 3 } }, /^copy\.a\.mappings: must be a list of mapping lines/],
    ['a bad platform', { a: { mappings: [M], platforms: 'linux' } }, /^copy\.a\.platforms: invalid platform "linux"/],
    ['keepManifestList without platforms', { a: { mappings: [M], keepManifestList: true } }, /^copy\.a\.keepManifestList: needs `platforms`/],
    ['a zero interval', { a: { mappings: [M], interval: '0s' } }, 'copy.a.interval: must be longer than 0'],
    ['a bad start time', { a: { mappings: [M], startAt: 'tomorrow' } }, /^copy\.a\.startAt: must be an ISO 8601 date/],
    ['negative retries', { a: { mappings: [M], retries: -1 } }, /^copy\.a\.retries: /],
    ['a dryRun that is not a boolean', { a: { mappings: [M], dryRun: 'yes' } }, /^copy\.a\.dryRun: /],
    ['a missing credentials file', { a: { mappings: [M], registryConfig: join(dir, 'none.json') } }, /^copy\.a\.registryConfig: .*no such file/],
    ['a credentials file that is not JSON', { a: { mappings: [M], registryConfig: badFile } }, /^copy\.a\.registryConfig: /],
    ['an unknown key', { a: { mappings: [M], tags: '*' } }, /^copy\.a\.tags: unknown key/],
  ])('refuses %s, naming the job', (_what, jobs, want) => {
    const msg = error({ copy: jobs });
    if (typeof want === 'string') expect(msg).toBe(want);
    else expect(msg).toMatch(want);
  });

  it('accepts a credentials file that parses', () => {
    expect(validateConfig({ copy: { a: { mappings: [M], registryConfig: auth } } }).copy[0]!.registryConfig).toBe(auth);
  });

  it('a copy job and a sync job cannot share a name; webhooks may name copy jobs and take copy events', () => {
    const upstreams = { 'quay.io': { url: 'https://quay.io' } };
    expect(error({ upstreams, sync: { a: { source: 'quay.io/org/app' } }, copy: { a: { mappings: [M] } } })).toBe('copy.a: a is also a sync job; jobs need distinct names');
    const cfg = validateConfig({ copy: { a: { mappings: [M] } }, webhooks: { w: { url: 'http://127.0.0.1:9/', jobs: ['a'], events: ['copy.succeeded', 'copy.failed'] } } });
    expect(cfg.webhooks[0]).toMatchObject({ jobs: ['a'], events: ['copy.succeeded', 'copy.failed'] });
    expect(validateConfig({ webhooks: { w: { url: 'http://127.0.0.1:9/' } } }).webhooks[0]!.events).toContain('copy.started');
  });
});
