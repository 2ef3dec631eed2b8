/**
 * `regcache sync now --wait` following a run by polling (src/cli/sync-wait.ts), with plain
 * progress lines (no terminal): a line per state the run goes through, the tag total once
 * known, tenths of a long run, the end; and a run gone from the history is an error.
 */
import { describe, expect, it } from 'vitest';
import { PlainProgress } from '../../src/cli/progress.js';
import { waitForRun } from '../../src/cli/sync-wait.js';
import type { JobDetail, JobRun, JobState } from '../../src/jobs/job-control.js';

function job(state: JobState, run: Partial<JobRun> & { counts: JobRun['counts'] }): JobDetail {
  const r: JobRun = { id: 'r1', startedAt: '2026-06-01T00:00:00.000Z', trigger: 'now', bytes: 0, ...run };
  return { name: 'app', kind: 'sync', state, enabled: true, config: {}, history: [r], lastRun: r };
}
const c = (synced: number, pending: number, failed = 0): JobRun['counts'] => ({ synced, unchanged: 0, failed, pending });

function scripted(states: JobDetail[]): { fetch: () => Promise<JobDetail>; polls: () => number } {
  let i = 0;
  return { fetch: async () => states[Math.min(i++, states.length - 1)]!, polls: () => i };
}

describe('sync now --wait progress', () => {
  it('plain lines: waiting, listing tags, the tag total, its end; the run returned', async () => {
    const s = scripted([
      job('SYNC_NOW', { counts: c(0, 0) }),
      job('SYNC_NOW', { counts: c(0, 0) }),
      job('SYNCING', { counts: c(0, 0) }),
      job('SYNCING', { counts: c(1, 2) }),
      job('SYNCING', { counts: c(2, 1) }),
      job('SUCCESS', { counts: c(3, 0), result: 'SUCCESS', endedAt: '2026-06-01T00:01:00.000Z' }),
    ]);
    let err = '';
    const progress = new PlainProgress('sync: app', { stdout: () => undefined, stderr: (t) => void (err += t) });
    const run = await waitForRun('r1', s.fetch, progress, { sleep: async () => undefined });
    expect(run).toMatchObject({ id: 'r1', result: 'SUCCESS', counts: c(3, 0) });
    expect(s.polls()).toBe(6);
    expect(err).toBe([
      'sync: app: waiting to start',
      'sync: app: waiting to start: 0 done',
      'sync: app: listing tags',
      'sync: app: listing tags: 0 done',
      'sync: app: tags (3)',
      'sync: app: tags: 3 done',
      '',
    ].join('\n'));
  });

  it('a run already ended at the first poll still reports its tags; a failed one is returned as such', async () => {
    let err = '';
    const progress = new PlainProgress('sync: app', { stdout: () => undefined, stderr: (t) => void (err += t) });
    const run = await waitForRun('r1', scripted([job('FAIL', { counts: c(1, 0, 1), result: 'FAIL', error: 'boom' })]).fetch, progress);
    expect(run).toMatchObject({ result: 'FAIL', error: 'boom' });
    expect(err).toBe('sync: app: tags (2)\nsync: app: tags: 2 done\n');
  });

  it('a long run shows its tenths', async () => {
    const states = [job('SYNCING', { counts: c(0, 200) }), job('SYNCING', { counts: c(50, 150) }), job('SUCCESS', { counts: c(200, 0), result: 'SUCCESS' })];
    let err = '';
    const progress = new PlainProgress('sync: app', { stdout: () => undefined, stderr: (t) => void (err += t) });
    await waitForRun('r1', scripted(states).fetch, progress, { sleep: async () => undefined });
    expect(err.split('\n').filter(Boolean)).toEqual([
      'sync: app: tags (200)',
      ...[20, 40, 60, 80, 100, 120, 140, 160, 180].map((n) => `sync: app: tags: ${n}/200 done`),
      'sync: app: tags: 200 done',
    ]);
  });

  it('a run no longer in the history is an error, and the progress is stopped', async () => {
    let err = '';
    const progress = new PlainProgress('sync: app', { stdout: () => undefined, stderr: (t) => void (err += t) });
    const other = job('SYNCING', { counts: c(0, 0) });
    other.history = [];
    other.lastRun = { ...other.lastRun!, id: 'r2' };
    const polls = [job('SYNCING', { counts: c(0, 0) }), other];
    await expect(waitForRun('r1', scripted(polls).fetch, progress, { sleep: async () => undefined })).rejects.toThrow('run r1 is no longer in the job\'s history');
    expect(err).toBe('sync: app: listing tags\nsync: app: listing tags: 0 done\n');
  });
});
