/**
 * Progress of the long offline commands (gc, fsck): a live bar (cli-progress) when stderr
 * is a terminal, plain lines otherwise, so a log file or a CI job gets a readable record
 * instead of cursor codes. Progress goes to stderr; the command's report stays on stdout
 * (and, on a terminal, is printed above the bar so the two never tear each other).
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import type { StepProgress } from '../store/recovery.js';
import type { CliIo } from './args.js';

export interface Progress extends StepProgress {
  /** A line of the command's report (ends with a newline). */
  line(text: string): void;
  /** Ends the current step, and the bar. */
  stop(): void;
}

export type ProgressMode = 'bar' | 'plain';

/**
 * A bar only on a real terminal that can draw one: not `TERM=dumb`, not under CI (whose
 * log viewers show every redraw as a line).
 */
export function progressMode(terminal: CliIo['terminal'], env: NodeJS.ProcessEnv): ProgressMode {
  if (!terminal?.stream.isTTY) return 'plain';
  if (env.TERM === 'dumb' || (env.CI !== undefined && env.CI !== '' && env.CI !== 'false')) return 'plain';
  return 'bar';
}

/** `command`: the prefix of plain lines ("fsck"). */
export function createProgress(command: string, io: CliIo): Progress {
  return progressMode(io.terminal, io.env) === 'bar' ? new BarProgress(io) : new PlainProgress(command, io);
}

/**
 * One line when a step starts, one at each tenth of a step of 100 items or more (a long
 * hash of a large store shows it moving), one when it ends.
 */
export class PlainProgress implements Progress {
  private label: string | undefined;
  private total: number | undefined;
  private done = 0;

  constructor(private readonly command: string, private readonly io: Pick<CliIo, 'stdout' | 'stderr'>) {}

  step(label: string, total?: number): void {
    this.end();
    this.label = label;
    this.total = total;
    this.done = 0;
    this.io.stderr(`${this.command}: ${label}${total === undefined ? '' : ` (${total})`}\n`);
  }

  tick(): void {
    this.done++;
    const t = this.total;
    if (t !== undefined && t >= 100 && this.done < t && Math.floor((this.done * 10) / t) > Math.floor(((this.done - 1) * 10) / t)) {
      this.io.stderr(`${this.command}: ${this.label}: ${this.done}/${t} done\n`);
    }
  }

  line(text: string): void {
    this.io.stdout(text);
  }

  stop(): void {
    this.end();
  }

  private end(): void {
    if (this.label === undefined) return;
    this.io.stderr(`${this.command}: ${this.label}: ${this.done} done\n`);
    this.label = undefined;
  }
}

/** A bar per step, redrawn in place; report lines are printed above it. */
class BarProgress implements Progress {
  private readonly bars: MultiBar;
  private bar: SingleBar | undefined;
  private done = 0;
  private stopped = false;
  private readonly unhook: Array<() => void> = [];

  constructor(private readonly io: CliIo) {
    this.bars = new MultiBar({
      stream: io.terminal!.stream,
      hideCursor: true,
      // Its own handler would keep the process alive after Ctrl-C; see restoreOnSignals.
      gracefulExit: false,
      // Long names are cut at the terminal's width rather than wrapping the bar.
      linewrap: false,
      clearOnComplete: false,
      barsize: 24,
    });
  }

  /**
   * Ctrl-C or a kill while a bar is drawn: give the cursor and line wrapping back, then
   * die of the same signal (the command is not left running, as cli-progress's own
   * gracefulExit would).
   */
  private restoreOnSignals(): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const handler = (): void => {
        this.stop();
        process.kill(process.pid, signal);
      };
      process.once(signal, handler);
      this.unhook.push(() => process.removeListener(signal, handler));
    }
  }

  step(label: string, total?: number): void {
    if (this.unhook.length === 0) this.restoreOnSignals();
    this.endBar();
    this.done = 0;
    const format = total === undefined
      ? `${label} {value} {detail}`
      : `${label} [{bar}] {value}/{total} {detail}`;
    this.bar = this.bars.create(total ?? 0, 0, { detail: '' }, { format });
  }

  tick(detail?: string): void {
    this.done++;
    this.bar?.update(this.done, { detail: detail ?? '' });
  }

  line(text: string): void {
    // On the same terminal the line goes above the bar; redirected, stdout gets it as is.
    if (this.io.terminal!.stdoutToo) this.bars.log(text);
    else this.io.stdout(text);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.endBar();
    // Flushes lines logged since the last redraw, then draws the bars a last time.
    this.bars.update();
    this.bars.stop();
    for (const f of this.unhook.splice(0)) f();
  }

  private endBar(): void {
    if (!this.bar) return;
    this.bar.update(this.done, { detail: '' });
    this.bar.stop();
  }
}
