/**
 * `regcache gc` and `fsck` without a terminal (issue 14, CLI progress): progress is plain
 * lines on stderr (a line per step and at its end), the report stays on stdout, and both
 * name what they found by tag or repository, not only by digest. The commands run
 * in-process on the data directory of a proxy that pulled an image and was stopped.
 */
import { rmSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/args.js';
import { fsck } from '../../src/cli/fsck.js';
import { gc } from '../../src/cli/gc.js';
import { layout } from '../../src/store/fs/layout.js';
import { sha256 as sha } from '../helpers/digest.js';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy } from './proxy-harness.js';

const CONFIG = resolve(import.meta.dirname, '..', '..', 'config', 'regcache.yaml');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function captureIo(): CliIo & { out: string; err: string } {
  const io = { out: '', err: '', env: {}, stdout: (s: string) => void (io.out += s), stderr: (s: string) => void (io.err += s) };
  return io;
}

describe('gc and fsck without a terminal', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => cleanup?.());

  /** A store holding fake.test/lib/app:v1 (config and layer files; the manifest is in the index), pulled months before now. */
  async function pulledStore(): Promise<{ dataDir: string; layer: string; manifest: string }> {
    const h = await startProxy();
    const dataDir = h.app.currentConfig.dataDir;
    cleanup = async () => {
      await h.up.close();
      rmSync(dataDir, { recursive: true, force: true });
    };
    const p = imageParts('lib/app:v1');
    h.up.putBlob('lib/app', p.config);
    h.up.putBlob('lib/app', p.layer);
    const manifest = h.up.putManifest('lib/app', p.manifest, OCI_MANIFEST, 'v1');
    const base = `http://127.0.0.1:${h.app.mainPort}/v2/${HOST}/lib/app`;
    expect((await fetch(`${base}/manifests/v1`)).status).toBe(200);
    for (const b of [p.config, p.layer]) expect(Buffer.from(await (await fetch(`${base}/blobs/${sha(b)}`)).arrayBuffer())).toEqual(b);
    await h.app.stop(1000);
    return { dataDir, layer: sha(p.layer), manifest };
  }

  it('fsck: a line per check on stderr, and the blob whose file is gone named by its repository', async () => {
    const s = await pulledStore();
    unlinkSync(layout(s.dataDir).blobPath(s.layer));
    const io = captureIo();
    expect(await fsck(['--config', CONFIG, '--data', s.dataDir], io)).toBe(3);
    expect(io.err.split('\n')).toEqual([
      'fsck: temp files (0)', 'fsck: temp files: 0 done',
      'fsck: stray files (0)', 'fsck: stray files: 0 done',
      'fsck: blob files (2)', 'fsck: blob files: 1 done', '',
    ]);
    expect(io.out).toMatch(/index rows with no file\s+found: 1/);
    expect(io.out).toContain(`  index row with no file: ${s.layer} [${HOST}/lib/app]\n`);
    expect(io.out).not.toContain('\x1b[');

    // Repaired, it is still named (read before the row goes), and then the store is clean.
    const fix = captureIo();
    expect(await fsck(['--config', CONFIG, '--data', s.dataDir, '--repair'], fix)).toBe(0);
    expect(fix.out).toContain(`  index row with no file: ${s.layer} [${HOST}/lib/app]\n`);
    const again = captureIo();
    expect(await fsck(['--config', CONFIG, '--data', s.dataDir], again)).toBe(0);
    expect(again.out).not.toContain('sha256:');
  });

  it('gc --dry-run and gc: the image named by its tag on stdout, a line as the sweep starts and ends on stderr', async () => {
    const s = await pulledStore();
    const dry = captureIo();
    expect(await gc(['--config', CONFIG, '--data', s.dataDir, '--dry-run'], dry)).toBe(0);
    expect(dry.out).toContain(`would remove image ${s.manifest} [${HOST}/lib/app:v1] (age;`);
    expect(dry.err).toBe('gc: planning\ngc: planning: 1 done\n');
    const real = captureIo();
    expect(await gc(['--config', CONFIG, '--data', s.dataDir], real)).toBe(0);
    expect(real.out).toContain(`remove image ${s.manifest} [${HOST}/lib/app:v1] (age;`);
    expect(real.out).toMatch(/^freed .*; 1 image\(s\), 0 unreferenced blob\(s\)$/m);
    expect(real.err).toBe('gc: removing\ngc: removing: 1 done\n');
  });
});
