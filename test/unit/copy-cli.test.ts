/** `regcache copy` usage errors, in-process: exit 2 (or UsageError, which cli.ts turns into 2) before any request. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError, type CliIo } from '../../src/cli/args.js';
import { copy } from '../../src/cli/copy.js';

function io(stdin = ''): CliIo & { out: string; err: string } {
  const o = {
    out: '', err: '',
    stdout: (s: string) => void (o.out += s),
    stderr: (s: string) => void (o.err += s),
    env: { HOME: mkdtempSync(join(tmpdir(), 'copy-cli-')) } as NodeJS.ProcessEnv,
    readStdin: async () => stdin,
  };
  return o;
}

// 192.0.2.0/24 (TEST-NET-1): nothing may be contacted on any of these paths.
const SRC = '192.0.2.1:5000/org/app:v1';
const DST = '192.0.2.2:5000/org/app:v1';

describe('regcache copy usage errors', () => {
  it('flags: unknown, bad values, incompatible combinations', async () => {
    for (const argv of [
      ['--output', 'xml', SRC, DST],
      ['--max-per-registry', '0', SRC, DST],
      ['--platforms', 'linux/amd64', '--filter-by-os', 'linux/.*', SRC, DST],
      ['--keep-manifest-list', SRC, DST],
      ['-x', SRC, DST],
      ['--bogus', SRC, DST],
      ['-f'],
      [],
    ]) {
      await expect(copy(argv, io()), argv.join(' ')).rejects.toBeInstanceOf(UsageError);
    }
  });

  it('mapping errors from files and stdin name file and line, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'copy-map-'));
    const f = join(dir, 'm.txt');
    writeFileSync(f, `# ok\n${SRC} ${DST}\nbad-line\n`);
    const a = io(`${SRC}\n`);
    expect(await copy(['-f', f, '-f', '-'], a)).toBe(2);
    expect(a.err).toContain(`${f}:3: `);
    expect(a.err).toContain('stdin:1: ');
  });

  it('overlapping destinations and a bad platform list: exit 2', async () => {
    const a = io();
    expect(await copy([`${SRC}=${DST}`, `192.0.2.1:5000/org/other:v1=${DST}`], a)).toBe(2);
    expect(a.err).toMatch(/command line:2: destination 192\.0\.2\.2:5000\/org\/app:v1 is also written by command line:1/);
    const b = io();
    expect(await copy(['--platforms', 'linux', SRC, DST], b)).toBe(2);
    expect(b.err).toMatch(/--platforms: "linux" is not OS\/ARCH/);
  });

  it('an explicit auth file that does not exist: exit 2', async () => {
    const a = io();
    expect(await copy(['--registry-config', '/nonexistent/auth.json', SRC, DST], a)).toBe(2);
    expect(a.err).toContain('/nonexistent/auth.json: no such file');
  });

  it('--help lists every flag', async () => {
    const a = io();
    expect(await copy(['--help'], a)).toBe(0);
    for (const flag of ['--dry-run', '--continue-on-error', '--skip-missing', '--force', '--platforms', '--filter-by-os', '--keep-manifest-list',
      '--max-per-registry', '--max-registries', '--registry-config', '--insecure', '--output']) expect(a.out).toContain(flag);
  });
});
