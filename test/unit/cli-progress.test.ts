/**
 * src/cli/progress.ts (issue 14): which renderer a command gets, and the plain lines a log
 * or a pipe receives. The bar itself is exercised under a pseudo-terminal in
 * test/integration/cli-progress-tty.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { PlainProgress, progressMode } from '../../src/cli/progress.js';

const tty = (isTTY: boolean) => ({ stream: { isTTY } as NodeJS.WriteStream, stdoutToo: true });

describe('progressMode', () => {
  it('draws a bar only on a terminal that can, outside CI', () => {
    expect(progressMode(undefined, {})).toBe('plain');
    expect(progressMode(tty(false), {})).toBe('plain');
    expect(progressMode(tty(true), { TERM: 'xterm-256color' })).toBe('bar');
    expect(progressMode(tty(true), { TERM: 'dumb' })).toBe('plain');
    expect(progressMode(tty(true), { CI: 'true' })).toBe('plain');
    expect(progressMode(tty(true), { CI: 'false' })).toBe('bar');
  });
});

describe('PlainProgress', () => {
  const capture = () => {
    const io = { out: '', err: '', stdout: (s: string) => void (io.out += s), stderr: (s: string) => void (io.err += s) };
    return io;
  };

  it('a line per step start and end; report lines go to stdout untouched', () => {
    const io = capture();
    const p = new PlainProgress('fsck', io);
    p.step('temp files', 2);
    p.tick('a');
    p.line('report\n');
    p.tick('b');
    p.step('blob files');
    p.tick();
    p.stop();
    p.stop();
    expect(io.err).toBe('fsck: temp files (2)\nfsck: temp files: 2 done\nfsck: blob files\nfsck: blob files: 1 done\n');
    expect(io.out).toBe('report\n');
  });

  it('a step of 100 items or more also gets a line at each tenth, never one per item', () => {
    const io = capture();
    const p = new PlainProgress('gc', io);
    p.step('blob files', 250);
    for (let i = 0; i < 250; i++) p.tick();
    p.stop();
    const lines = io.err.trim().split('\n');
    expect(lines[0]).toBe('gc: blob files (250)');
    expect(lines.slice(1, -1)).toEqual([25, 50, 75, 100, 125, 150, 175, 200, 225].map((n) => `gc: blob files: ${n}/250 done`));
    expect(lines.at(-1)).toBe('gc: blob files: 250 done');
  });
});
