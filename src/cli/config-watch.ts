/**
 * Noticing config changes. Editors and `regcache mirror` replace the file by rename, so the
 * directory is watched. A file bind-mounted on its own (`-v my.yaml:/etc/regcache/regcache.yaml`)
 * is pinned to the inode that was mounted: a replacement by rename on the host is never
 * visible inside, and the directory sees no event even for in-place writes. So the file is
 * watched too (in-place writes reach it), SIGHUP always re-reads it, and serve warns at
 * start when the config is such a mount (mount the directory instead).
 */
import { readFileSync, realpathSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Mount points listed in a /proc/self/mountinfo text (field 5, octal escapes decoded). */
export function mountPoints(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    out.add(f[4]!.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Whether `file` is itself a mount point (a single-file bind mount). False when it cannot tell. */
export function isSingleFileMount(file: string, mountinfo?: string): boolean {
  try {
    const text = mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
    return mountPoints(text).has(realpathSync(file));
  } catch {
    return false;
  }
}

export interface ConfigWatch {
  close(): void;
}

/** Calls onChange (debounced by `debounceMs`) when the file is replaced or written. */
export function watchConfigFile(file: string, onChange: () => void, onWarn: (msg: string) => void, debounceMs = 200): ConfigWatch {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const changed = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  try {
    watchers.push(watch(dirname(file), (_event, name) => {
      if (name === basename(file)) changed();
    }));
  } catch (err) {
    onWarn(`cannot watch ${dirname(file)}: ${(err as Error).message}; use SIGHUP to reload`);
  }
  try {
    // Follows the inode: fires for in-place writes, and once more when the file is renamed over.
    watchers.push(watch(file, () => changed()));
  } catch {
    /* no file to watch yet: the directory watch covers its creation */
  }
  for (const w of watchers) w.on('error', () => w.close());
  return {
    close(): void {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
