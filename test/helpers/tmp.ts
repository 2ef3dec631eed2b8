/**
 * Temporary directories for helpers and tests: created under os.tmpdir(), removed by cleanupAll(), at process exit,
 * or by reaper.ts if the test process is killed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forgetDir, reapDir } from './reaper.js';

const live = new Set<string>();

/** Creates a fresh directory `<os.tmpdir()>/<prefix>XXXXXX` and tracks it for cleanup. */
export function tmpDir(prefix = 'regcache-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  live.add(dir);
  reapDir(dir);
  return dir;
}

/** Removes one directory made by tmpDir() now (no error if it is already gone). */
export async function removeTmpDir(dir: string): Promise<void> {
  live.delete(dir);
  await rm(dir, { recursive: true, force: true });
  forgetDir(dir);
}

/** Removes every directory tmpDir() made that is still there. Call it in afterAll. */
export async function cleanupAll(): Promise<void> {
  const dirs = [...live];
  live.clear();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  for (const d of dirs) forgetDir(d);
}

// Safety net: a test that forgot cleanupAll() still leaves nothing behind on a normal exit.
process.once('exit', () => {
  for (const d of live) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort at exit */
    }
  }
});
