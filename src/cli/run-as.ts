/** Who this process runs as (for the data-directory check's message). CLI only: it reads process.*. */
import { userInfo } from 'node:os';
import type { RunAs } from '../store/fs/data-dir-check.js';

export function currentUser(): RunAs {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  let username = String(uid);
  try {
    username = userInfo().username;
  } catch {
    /* a uid with no passwd entry (docker run --user 1234) */
  }
  return { uid, gid, username };
}
