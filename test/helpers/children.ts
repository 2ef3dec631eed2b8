/**
 * Child processes started by helpers: every one is tracked, its output captured, and it can be stopped
 * (SIGTERM, then SIGKILL after a grace period). Anything still running when the test process exits is SIGKILLed
 * (by an 'exit' handler, and by reaper.ts when the process is killed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { forgetPid, reapPid } from './reaper.js';

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedSpawnOptions {
  cwd?: string;
  /** Full environment of the child (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Captured output kept per stream, oldest dropped first (default 64 MiB). */
  maxOutputBytes?: number;
}

const live = new Set<ManagedProcess>();

class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export class ManagedProcess {
  readonly proc: ChildProcess;
  /** Resolves once the process has exited (or failed to spawn: then code is null and spawnError is set). */
  readonly exited: Promise<ExitResult>;
  spawnError?: Error;
  private exit?: ExitResult;
  private readonly out: OutputBuffer;
  private readonly err: OutputBuffer;

  constructor(
    readonly command: string,
    readonly args: readonly string[],
    opts: ManagedSpawnOptions = {},
  ) {
    const max = opts.maxOutputBytes ?? 64 * 1024 * 1024;
    this.out = new OutputBuffer(max);
    this.err = new OutputBuffer(max);
    this.proc = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    if (this.proc.pid !== undefined) reapPid(this.proc.pid);
    this.proc.stdout!.on('data', (b: Buffer) => this.out.push(b));
    this.proc.stderr!.on('data', (b: Buffer) => this.err.push(b));
    this.exited = new Promise<ExitResult>((resolve) => {
      const done = (r: ExitResult): void => {
        if (this.exit) return;
        this.exit = r;
        live.delete(this);
        if (this.proc.pid !== undefined) forgetPid(this.proc.pid);
        resolve(r);
      };
      this.proc.once('error', (e) => {
        // 'error' without a pid means it never started; with a pid, 'close' still follows.
        if (this.proc.pid === undefined) {
          this.spawnError = e;
          done({ code: null, signal: null });
        }
      });
      this.proc.once('close', (code, signal) => done({ code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** Exit status once exited, else undefined. */
  get exitResult(): ExitResult | undefined {
    return this.exit;
  }

  stdout(): string {
    return this.out.bytes().toString('utf8');
  }

  stderr(): string {
    return this.err.bytes().toString('utf8');
  }

  stdoutBytes(): Buffer {
    return this.out.bytes();
  }

  /** Sends `signal`, waits up to graceMs, then SIGKILLs. Resolves with the exit status; a no-op if already exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<ExitResult> {
    if (this.exit) return this.exit;
    this.proc.kill(signal);
    if (signal === 'SIGKILL') return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const killer = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (!this.exit) this.proc.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    const r = await Promise.race([this.exited, killer.then(() => this.exited)]);
    clearTimeout(timer);
    return r;
  }
}

/** Starts and tracks a long-running child process. */
export function spawnManaged(command: string, args: readonly string[], opts: ManagedSpawnOptions = {}): ManagedProcess {
  return new ManagedProcess(command, args, opts);
}

/** Child processes started through this module that are still running. */
export function liveChildren(): ManagedProcess[] {
  return [...live];
}

/** Stops every tracked child (SIGTERM, SIGKILL after graceMs). A last-resort afterAll. */
export async function stopAllChildren(graceMs = 5_000): Promise<void> {
  await Promise.all([...live].map((p) => p.stop('SIGTERM', graceMs)));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions extends ManagedSpawnOptions {
  /** Killed with SIGKILL after this long (default 120 s); timedOut is then true. */
  timeoutMs?: number;
}

/** Runs a command to completion and captures its output. Never throws for a non-zero exit; throws if it cannot start. */
export async function runCommand(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const p = spawnManaged(command, args, opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.proc.kill('SIGKILL');
  }, opts.timeoutMs ?? 120_000);
  const r = await p.exited;
  clearTimeout(timer);
  if (p.spawnError) throw new Error(`cannot run ${command}: ${p.spawnError.message}`);
  const stdoutBytes = p.stdoutBytes();
  return { ...r, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: p.stderr(), timedOut };
}

/** Like runCommand but throws (with stderr) unless the exit code is 0; returns stdout. */
export async function runChecked(command: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await runCommand(command, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (code ${r.code}, signal ${r.signal}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}`,
    );
  }
  return r.stdout;
}

// Safety net: nothing started here outlives the test process when it exits normally.
process.once('exit', () => {
  for (const p of live) {
    try {
      p.proc.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});
