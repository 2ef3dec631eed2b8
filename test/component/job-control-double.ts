/**
 * A JobControl test double: one sync job whose run the test steps through by hand
 * (SYNC_NOW -> SYNCING -> SUCCESS or FAIL), emitting the same sync.* events the real
 * service does. The admin API test uses it for what the real service makes hard to hold
 * still (each state in turn, per-tag outcomes of a successful run, the generic /jobs
 * routes over any JobControl); the browser test runs the real sync service.
 */
import type { EventBus } from '../../src/events/event-bus.js';
import type { JobControl, JobDetail, JobRun, JobSummary } from '../../src/jobs/job-control.js';

export interface JobControlDouble extends JobControl {
  /** Moves the running job on: SYNC_NOW -> SYNCING, SYNCING -> SUCCESS (or FAIL with `fail`). */
  step(name: string, opts?: { fail?: string }): void;
  /** Where events go; set once the App (and its bus) exists. */
  events: EventBus | undefined;
  runNowCalls: string[];
}

export function jobControlDouble(names: string[], now: () => number = Date.now): JobControlDouble {
  const jobs = new Map<string, JobDetail>(names.map((name) => [name, {
    name, kind: 'sync', state: 'NEVER_RUN', enabled: true, nextRun: new Date(now() + 3_600_000).toISOString(),
    config: { source: 'fake.test/library/app', tags: ['v*'], schedule: '1h' }, history: [],
  }]));
  const iso = (): string => new Date(now()).toISOString();
  let runs = 0;
  const double: JobControlDouble = {
    events: undefined,
    runNowCalls: [],
    list: (): JobSummary[] => [...jobs.values()].map(({ config: _c, history: _h, ...summary }) => summary),
    get: (name) => jobs.get(name),
    async runNow(name, _opts) {
      const j = jobs.get(name);
      if (!j) return undefined;
      double.runNowCalls.push(name);
      const run: JobRun = { id: String(++runs), startedAt: iso(), trigger: 'now', counts: { synced: 0, unchanged: 0, failed: 0, pending: 2 }, bytes: 0 };
      j.state = 'SYNC_NOW';
      j.lastStart = run.startedAt;
      j.lastRun = run;
      j.history.unshift(run);
      double.events?.emit('sync.started', { job: name, run: run.id, trigger: 'now' }, name);
      return run;
    },
    cancel(name) {
      const j = jobs.get(name);
      if (!j || (j.state !== 'SYNCING' && j.state !== 'SYNC_NOW')) return false;
      j.state = 'CANCEL';
      if (j.lastRun) Object.assign(j.lastRun, { endedAt: iso(), result: 'CANCEL' });
      double.events?.emit('sync.cancelled', { job: name }, name);
      return true;
    },
    step(name, opts = {}) {
      const j = jobs.get(name)!;
      const run = j.lastRun!;
      if (j.state === 'SYNC_NOW') {
        j.state = 'SYNCING';
        return;
      }
      j.state = opts.fail ? 'FAIL' : 'SUCCESS';
      j.lastEnd = iso();
      Object.assign(run, {
        endedAt: j.lastEnd, result: j.state,
        counts: opts.fail ? { synced: 1, unchanged: 0, failed: 1, pending: 0 } : { synced: 2, unchanged: 0, failed: 0, pending: 0 },
        bytes: 2048,
        tags: [{ ref: 'library/app:v1', outcome: 'synced' }, { ref: 'library/app:v2', outcome: opts.fail ? 'failed' : 'synced', ...(opts.fail ? { reason: opts.fail } : {}) }],
      });
      if (opts.fail) {
        run.error = opts.fail;
        j.lastError = opts.fail;
      }
      double.events?.emit(opts.fail ? 'sync.failed' : 'sync.succeeded', { job: name, run: run.id }, name);
    },
  };
  return double;
}
