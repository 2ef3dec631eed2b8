/**
 * Last-resort cleanup that survives the test process being killed. Vitest ends a fork worker with SIGTERM and then
 * SIGKILL, so 'exit' handlers do not run; a small detached watchdog process holds the read end of a pipe from this
 * process, and when that pipe closes (this process is gone, however it died) it SIGKILLs the registered PIDs and
 * removes the registered directories. Helpers unregister what they stop or remove themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

const WATCHDOG = `
const { rmSync } = require('node:fs');
const pids = new Set(); const dirs = new Set(); let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d; let i;
  while ((i = buf.indexOf('\\n')) !== -1) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const sp = line.indexOf(' '); const op = line.slice(0, sp); const arg = line.slice(sp + 1);
    if (op === '+pid') pids.add(Number(arg)); else if (op === '-pid') pids.delete(Number(arg));
    else if (op === '+dir') dirs.add(arg); else if (op === '-dir') dirs.delete(arg);
  }
});
const reap = () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch {} }
  setTimeout(() => { for (const d of dirs) { try { rmSync(d, { recursive: true, force: true }); } catch {} } process.exit(0); }, 200);
};
process.stdin.on('end', reap); process.stdin.on('error', reap);
process.on('SIGTERM', () => {}); process.on('SIGINT', () => {}); process.on('SIGHUP', () => {});
`;

/** Last argument of the watchdog's command line, to tell it apart in `ps`/`pgrep -a` output. */
export const REAPER_MARK = 'regcache-test-reaper';

let watchdog: ChildProcess | undefined;
let broken = false;

function send(line: string): void {
  if (broken) return;
  if (!watchdog) {
    try {
      watchdog = spawn(process.execPath, ['-e', WATCHDOG, REAPER_MARK], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    } catch {
      broken = true;
      return;
    }
    watchdog.on('error', () => (broken = true));
    watchdog.stdin!.on('error', () => (broken = true));
    watchdog.unref();
    (watchdog.stdin as unknown as Socket).unref();
  }
  watchdog.stdin!.write(`${line}\n`);
}

/** SIGKILL this PID if the test process dies before forgetPid(). */
export function reapPid(pid: number): void {
  send(`+pid ${pid}`);
}

export function forgetPid(pid: number): void {
  send(`-pid ${pid}`);
}

/** Remove this directory if the test process dies before forgetDir(). */
export function reapDir(dir: string): void {
  if (dir.includes('\n')) return;
  send(`+dir ${dir}`);
}

export function forgetDir(dir: string): void {
  if (dir.includes('\n')) return;
  send(`-dir ${dir}`);
}
