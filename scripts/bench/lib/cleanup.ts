/**
 * Teardown for the benchmark and the soak: everything started registers a stop function here; runCleanup() runs
 * them newest first (each bounded in time), and SIGINT/SIGTERM run it before exiting. The test helpers' own safety
 * nets (SIGKILL of tracked children and removal of temp dirs at exit, and the reaper watchdog if this process is
 * killed outright) stay underneath.
 */
import { cleanupAll, stopAllChildren } from '../../../test/helpers/index.js';

interface Entry {
  name: string;
  fn: () => Promise<unknown> | unknown;
}

const stack: Entry[] = [];
let running: Promise<void> | undefined;
let interrupted: NodeJS.Signals | undefined;

/** The signal that interrupted the run, if any (results are then not written). */
export function interruptedBy(): NodeJS.Signals | undefined {
  return interrupted;
}

/** Registers a stop function; the returned function unregisters it (call it after stopping normally). */
export function onCleanup(name: string, fn: () => Promise<unknown> | unknown): () => void {
  const e: Entry = { name, fn };
  stack.push(e);
  return () => {
    const i = stack.indexOf(e);
    if (i >= 0) stack.splice(i, 1);
  };
}

async function bounded(e: Entry, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(e.fn),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } catch (err) {
    console.error(`cleanup: ${e.name}: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Stops everything registered (newest first), then every child process the helpers track, then temp dirs. */
export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (stack.length > 0) await bounded(stack.pop()!, 20_000);
    await stopAllChildren(5_000);
    await cleanupAll();
  })();
  return running;
}

/** SIGINT/SIGTERM: clean up and exit 130 (143); a second signal exits at once (exit handlers still SIGKILL). */
export function installSignalHandlers(): void {
  let caught = false;
  const on = (sig: NodeJS.Signals, code: number): void => {
    process.on(sig, () => {
      if (caught) {
        console.error(`\n${sig} again: exiting now`);
        process.exit(code);
      }
      caught = true;
      interrupted = sig;
      console.error(`\n${sig}: stopping everything the benchmark started...`);
      void runCleanup().finally(() => process.exit(code));
    });
  };
  on('SIGINT', 130);
  on('SIGTERM', 143);
}
