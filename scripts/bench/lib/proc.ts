/** Resource readings of a process from /proc (Linux). */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStatus {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size since the process started (VmHWM), bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of a process, or undefined once it is gone. */
export function procStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Open file descriptors of a process (entries in /proc/PID/fd), or undefined once it is gone. */
export function fdCount(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** Direct children of a process (/proc/PID/task/*\/children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    /* no children file (kernel without CONFIG_PROC_CHILDREN): scan below */
  }
  if (out.length > 0) return out;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      /* raced with an exit */
    }
  }
  return out;
}

/** Polls VmRSS of a process every `intervalMs` while running; stop() gives the peak seen and the kernel's VmHWM. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private peak = 0;
  private last: ProcStatus | undefined;
  samples = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): this {
    const tick = (): void => {
      const s = procStatus(this.pid);
      if (!s) return;
      this.last = s;
      this.samples++;
      if (s.rss > this.peak) this.peak = s.rss;
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    return this;
  }

  /** Peak VmRSS polled, and VmHWM (peak since the process started, so it includes start-up). */
  stop(): { peakRss: number; hwm: number; samples: number } {
    clearInterval(this.timer);
    const s = procStatus(this.pid) ?? this.last;
    if (s && s.rss > this.peak) this.peak = s.rss;
    return { peakRss: this.peak, hwm: s?.hwm ?? 0, samples: this.samples };
  }
}

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/PID/stat times (getconf CLK_TCK; 100 on every Linux we run on). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface StatCpu {
  /** The command name (comm). */
  name: string;
  /** User and system CPU seconds so far. */
  user: number;
  system: number;
}

/** A /proc stat file (`/proc/PID/stat` or `/proc/PID/task/TID/stat`): name and CPU seconds, or undefined once it is gone. */
export function statCpu(path: string): StatCpu | undefined {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may contain spaces) start at field 3; utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), user: Number(f[11]) / clockTicks(), system: Number(f[12]) / clockTicks() };
}

/** User + system CPU seconds a process has used so far (/proc/PID/stat utime + stime), or 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  const c = statCpu(`/proc/${pid}/stat`);
  return c ? c.user + c.system : 0;
}

/** CPU seconds of a process and its direct children (nginx: the master and its workers). */
export function treeCpuSeconds(pid: number): number {
  return cpuSeconds(pid) + childPids(pid).reduce((a, c) => a + cpuSeconds(c), 0);
}
