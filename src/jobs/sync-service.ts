/**
 * The jobs service: runs the sync jobs (`sync.<name>`) and scheduled copies (`copy.<name>`,
 * copy-run.ts) of the config on their schedule
 * (startAt, then every interval), on demand (runNow), with a timeout per run, retries with
 * doubling delays after a failed run, and cancel. It is the JobControl the admin API, the
 * page and `regcache sync ...` use. State lives in the metadata store (job-state.ts); what
 * each job holds is pinned against retention (`holds`). One event per run goes to the event
 * bus (<kind>.started, then <kind>.succeeded | failed | cancelled, kind `sync` or `copy`),
 * which feeds the log, metrics and webhooks. Both kinds share the scheduler, state, history,
 * retries, timeout and cancel; only what a run does differs (runSync or runCopyJob). A
 * config reload adds, removes and reschedules jobs live.
 *
 * With replicas (deps.leader), jobs run once in the cluster: only on the replica holding the
 * leader lease. A replica that becomes the leader reads the jobs' state afresh from the shared
 * store, records a run the previous leader left in progress as INTERRUPTED and runs it again;
 * a replica that loses the lease aborts its runs and leaves their `running` mark for the next
 * leader to find.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config, CopyJobConfig, SyncJobConfig } from '../config/types.js';
import type { EventBus, RegcacheEvent } from '../events/event-bus.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseSyncSource } from '../protocol/sync-source.js';
import { compileTagFilter } from '../protocol/tag-pattern.js';
import { OciError } from '../protocol/errors.js';
import type { Proxy } from '../registry/proxy/proxy.js';
import { NOTHING_TO_RELOAD, type ReloadResult, type Service } from '../service.js';
import type { MetadataStore } from '../store/metadata-store.js';
import { runCopyJob } from './copy-run.js';
import type { JobControl, JobDetail, JobKind, JobRun, JobState, JobSummary } from './job-control.js';
import { emptyJob, JobStateStore, pushHistory, type StoredJob } from './job-state.js';
import { dueAt, retryAt } from './schedule.js';
import { runSync, StopRun } from './sync-run.js';
import { SyncMetrics } from './sync-metrics.js';
import { UpstreamBudget } from './upstream-budget.js';
import { Webhooks } from './webhooks.js';

export interface SyncServiceDeps {
  meta: MetadataStore;
  proxy: Proxy;
  events: EventBus;
  metrics: Metrics;
  log: Logger;
  now: () => number;
  /** Present when this process is one replica of a cluster: jobs run only while it leads. */
  leader?: LeaderLease;
}

/** The cluster's leader lease as the jobs service sees it (ReplicaService). */
export interface LeaderLease {
  isLeader(): boolean;
  onLeaderChange(cb: (leader: boolean) => void): () => void;
}

/** Why a run was aborted. */
class Cancelled extends Error {}
class ShuttingDown extends Error {}

/** setTimeout takes at most 2^31-1 ms; longer waits are re-armed. */
const MAX_TIMER = 2 ** 31 - 1;

interface Running {
  run: JobRun;
  controller: AbortController;
  done: Promise<JobRun>;
  /** SYNC_NOW until the run has started listing. */
  state: 'SYNC_NOW' | 'SYNCING';
}

/** A job of either kind; `kind` tells which config it has. */
type JobConfig = ({ kind: 'sync' } & SyncJobConfig) | ({ kind: 'copy' } & CopyJobConfig);

/** The jobs of a config, sync jobs first, each tagged with its kind. */
function jobsOf(c: Config): JobConfig[] {
  return [...c.sync.map((j) => ({ kind: 'sync' as const, ...j })), ...c.copy.map((j) => ({ kind: 'copy' as const, ...j }))];
}

interface Job {
  cfg: JobConfig;
  stored: StoredJob;
  running?: Running;
  timer?: NodeJS.Timeout;
  nextRun?: number;
  nextTrigger?: JobRun['trigger'];
}

export class SyncService implements Service, JobControl {
  readonly name = 'sync';
  private readonly jobs = new Map<string, Job>();
  private readonly budgets = new Map<string, UpstreamBudget>();
  private readonly stores: Record<JobKind, JobStateStore>;
  private readonly webhooks: Webhooks;
  private readonly syncMetrics: SyncMetrics;
  private heldDigests = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private unsubscribeLeader: (() => void) | undefined;
  /** Leadership changes are handled one after the other. */
  private transition: Promise<void> = Promise.resolve();
  private started = false;

  constructor(private config: Config, private readonly d: SyncServiceDeps) {
    this.stores = { sync: new JobStateStore(d.meta, 'sync/'), copy: new JobStateStore(d.meta, 'copy/') };
    this.syncMetrics = new SyncMetrics(d.metrics.registry, {
      gauges: () => [...this.jobs.values()].map((j) => ({
        job: j.cfg.name, state: this.stateOf(j), pending: j.running?.run.counts.pending ?? 0,
        ...(j.stored.lastSuccess ? { lastSuccess: Date.parse(j.stored.lastSuccess) } : {}),
      })),
    });
    this.webhooks = new Webhooks({
      webhooks: () => this.config.webhooks, log: d.log, now: d.now,
      outcome: (e, o) => this.webhookOutcome(e, o),
    });
  }

  /** Whether a job holds `digest` (an image retention must keep). */
  holds(digest: string): boolean {
    return this.heldDigests.has(digest);
  }

  // --- Service ---

  async start(): Promise<void> {
    const saved = { sync: await this.stores.sync.all(), copy: await this.stores.copy.all() };
    this.unsubscribe = this.d.events.subscribe((e) => {
      if (e.type.startsWith('sync.') || e.type.startsWith('copy.')) this.webhooks.publish(e);
    });
    this.started = true;
    for (const cfg of jobsOf(this.config)) this.jobs.set(cfg.name, { cfg, stored: saved[cfg.kind].get(cfg.name) ?? emptyJob() });
    if (this.leads()) await this.takeCharge(saved);
    this.unsubscribeLeader = this.d.leader?.onLeaderChange((leader) => {
      this.transition = this.transition.then(() => (leader ? this.becomeLeader() : this.stepDown())).catch((err: Error) => {
        this.d.log.error({ err: err.message }, 'cannot take charge of the jobs as the new leader');
      });
    });
    this.recomputeHeld();
    this.updateBudgets();
  }

  /** Whether this process runs the jobs: always alone, only as the leader in a cluster. */
  private leads(): boolean {
    return this.d.leader?.isLeader() ?? true;
  }

  /** As the (new) leader: runs left in progress were interrupted and run again; the rest is scheduled. */
  private async takeCharge(saved: Record<JobKind, Map<string, StoredJob>>): Promise<void> {
    for (const job of this.jobs.values()) {
      if (job.stored.running && !job.running) await this.interrupted(job);
      this.schedule(job);
    }
    // State of jobs no longer in the config: they hold nothing any more.
    for (const kind of ['sync', 'copy'] as const) {
      for (const name of saved[kind].keys()) if (this.jobs.get(name)?.cfg.kind !== kind) await this.stores[kind].delete(name);
    }
  }

  /** This replica took the leader lease: the state the previous leader wrote is the truth. */
  private async becomeLeader(): Promise<void> {
    if (!this.started || !this.leads()) return;
    const saved = { sync: await this.stores.sync.all(), copy: await this.stores.copy.all() };
    for (const job of this.jobs.values()) {
      if (!job.running) job.stored = saved[job.cfg.kind].get(job.cfg.name) ?? emptyJob();
    }
    this.d.log.info({ jobs: this.jobs.size }, 'leader: taking charge of sync and copy jobs');
    await this.takeCharge(saved);
    this.recomputeHeld();
  }

  /** This replica lost the leader lease: nothing more runs here; the next leader re-runs what was cut. */
  private async stepDown(): Promise<void> {
    if (this.leads()) return;
    for (const j of this.jobs.values()) {
      clearTimeout(j.timer);
      j.timer = undefined;
      j.nextRun = undefined;
      j.running?.controller.abort(new ShuttingDown('this replica is no longer the leader'));
    }
  }

  async stop(graceMs: number): Promise<void> {
    this.started = false;
    this.unsubscribe?.();
    this.unsubscribeLeader?.();
    await this.transition;
    const runs: Promise<unknown>[] = [];
    for (const j of this.jobs.values()) {
      clearTimeout(j.timer);
      if (j.running) {
        // The `running` mark stays in the store: the next start records the run as
        // interrupted and runs the job again.
        j.running.controller.abort(new ShuttingDown('regcache is stopping'));
        runs.push(j.running.done);
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(runs), new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    await this.webhooks.stop(Math.min(graceMs, 2000));
  }

  async reload(next: Config): Promise<ReloadResult> {
    this.config = next;
    this.updateBudgets();
    const nextJobs = jobsOf(next);
    const kinds = new Map(nextJobs.map((j) => [j.name, j.kind]));
    for (const [name, j] of this.jobs) {
      // A name that changed kind is a removed job and a new one.
      if (kinds.get(name) === j.cfg.kind) continue;
      clearTimeout(j.timer);
      j.running?.controller.abort(new Cancelled('the job was removed from the config'));
      this.jobs.delete(name);
      this.syncMetrics.forget(name);
      // Only the leader writes job state: a follower's copy may be stale.
      if (this.leads()) await this.stores[j.cfg.kind].delete(name);
    }
    for (const cfg of nextJobs) {
      const j = this.jobs.get(cfg.name);
      if (!j) {
        const job: Job = { cfg, stored: emptyJob() };
        this.jobs.set(cfg.name, job);
        this.schedule(job);
        continue;
      }
      if (JSON.stringify(j.cfg) === JSON.stringify(cfg)) continue;
      j.cfg = cfg;
      // Tags that no longer match (or a new source) are held no more.
      const keep = this.stillMatches(cfg);
      for (const ref of Object.keys(j.stored.held)) if (!keep(ref)) delete j.stored.held[ref];
      if (this.leads()) await this.stores[cfg.kind].save(cfg.name, j.stored);
      this.schedule(j);
    }
    this.recomputeHeld();
    return NOTHING_TO_RELOAD;
  }

  async status(): Promise<Record<string, unknown>> {
    return Object.fromEntries([...this.jobs.values()].map((j) => [j.cfg.name, this.stateOf(j)]));
  }

  // --- JobControl ---

  list(): JobSummary[] {
    return [...this.jobs.values()].map((j) => this.summary(j));
  }

  get(name: string): JobDetail | undefined {
    const j = this.jobs.get(name);
    if (!j) return undefined;
    const history = [...j.stored.history];
    if (j.running) history.push(j.running.run);
    const { kind: _kind, ...config } = j.cfg;
    return { ...this.summary(j), config, history };
  }

  async runNow(name: string, opts: { wait?: boolean } = {}): Promise<JobRun | undefined> {
    const j = this.jobs.get(name);
    if (!j || !this.started) return undefined;
    if (!this.leads()) throw new OciError('UNAVAILABLE', 'this replica is not the leader: sync and copy jobs run on the leader replica; retry (another replica may answer)', { job: name });
    const r = j.running ?? this.begin(j, 'now');
    return opts.wait ? r.done : r.run;
  }

  cancel(name: string): boolean {
    const j = this.jobs.get(name);
    if (!j?.running) return false;
    j.running.controller.abort(new Cancelled('cancelled'));
    return true;
  }

  // --- scheduling ---

  private stateOf(j: Job): JobState {
    if (j.running) return j.running.state;
    if (j.stored.state === 'NEVER_RUN' && j.nextRun !== undefined) return 'SCHEDULED';
    return j.stored.state;
  }

  private summary(j: Job): JobSummary {
    const s: JobSummary = { name: j.cfg.name, kind: j.cfg.kind, state: this.stateOf(j), enabled: j.cfg.enabled };
    const st = j.stored;
    if (st.lastStart) s.lastStart = st.lastStart;
    if (st.lastEnd) s.lastEnd = st.lastEnd;
    if (j.nextRun !== undefined) s.nextRun = new Date(j.nextRun).toISOString();
    s.retriesLeft = st.retriesLeft ?? j.cfg.retries;
    if (st.lastError) s.lastError = st.lastError;
    if (st.lastWebhook) s.lastWebhook = st.lastWebhook;
    const last = j.running?.run ?? st.history[st.history.length - 1];
    if (last) s.lastRun = last;
    return s;
  }

  private schedule(j: Job, retry?: number): void {
    clearTimeout(j.timer);
    j.timer = undefined;
    if (!this.started) return;
    // A follower keeps no timers: the leader runs the jobs, and a new leader schedules afresh.
    if (!this.leads()) {
      j.nextRun = undefined;
      return;
    }
    // A run interrupted by a stop or crash runs again at once, also for a disabled job.
    const rerun = j.nextTrigger === 'start';
    const lastStart = j.stored.lastStart ? Date.parse(j.stored.lastStart) : undefined;
    const at = retry ?? (rerun ? this.d.now() : dueAt(j.cfg, lastStart, this.d.now()));
    j.nextRun = at;
    j.nextTrigger = retry !== undefined ? 'retry' : rerun ? 'start' : 'schedule';
    if (at === undefined || j.running) return;
    const arm = (): void => {
      const wait = at - this.d.now();
      j.timer = setTimeout(() => {
        if (at - this.d.now() > 0 && wait >= MAX_TIMER) return arm();
        j.timer = undefined;
        if (!j.running && this.jobs.get(j.cfg.name) === j && this.leads()) this.begin(j, j.nextTrigger ?? 'schedule');
      }, Math.min(Math.max(wait, 0), MAX_TIMER));
      j.timer.unref();
    };
    arm();
  }

  private async interrupted(j: Job): Promise<void> {
    const r = j.stored.running!;
    const run: JobRun = {
      ...r, endedAt: new Date(this.d.now()).toISOString(), result: 'INTERRUPTED',
      error: 'interrupted: regcache stopped during the run', counts: { synced: 0, unchanged: 0, failed: 0, pending: 0 }, bytes: 0,
    };
    pushHistory(j.stored, run);
    delete j.stored.running;
    j.stored.state = 'FAIL';
    j.stored.lastError = run.error!;
    j.stored.lastEnd = run.endedAt!;
    // Runs again now rather than at its next slot (schedule()).
    j.nextTrigger = 'start';
    await this.stores[j.cfg.kind].save(j.cfg.name, j.stored);
    this.syncMetrics.runs.inc({ job: j.cfg.name, result: 'INTERRUPTED' });
    this.d.events.emit(`${j.cfg.kind}.failed`, { job: j.cfg.name, run: run.id, result: 'INTERRUPTED', error: run.error }, j.cfg.name);
  }

  // --- a run ---

  private budget(host: string): UpstreamBudget {
    let b = this.budgets.get(host);
    if (!b) {
      b = new UpstreamBudget(this.limitsOf(host), {
        now: this.d.now,
        sleep: (ms, signal) => new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, ms);
          signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
        }),
      });
      this.budgets.set(host, b);
    }
    return b;
  }

  private limitsOf(host: string): { concurrency: number; perMinute?: number | undefined } {
    const l = this.config.syncLimits.find((x) => x.host === host);
    return { concurrency: l?.concurrency ?? 4, perMinute: l?.perMinute };
  }

  private updateBudgets(): void {
    for (const [host, b] of this.budgets) b.setLimits(this.limitsOf(host));
  }

  private begin(j: Job, trigger: JobRun['trigger']): Running {
    clearTimeout(j.timer);
    j.timer = undefined;
    j.nextRun = undefined;
    j.nextTrigger = undefined;
    const startedAt = new Date(this.d.now()).toISOString();
    const run: JobRun = { id: randomUUID(), startedAt, trigger, counts: { synced: 0, unchanged: 0, failed: 0, pending: 0 }, bytes: 0 };
    const controller = new AbortController();
    const running: Running = { run, controller, state: trigger === 'now' ? 'SYNC_NOW' : 'SYNCING', done: Promise.resolve(run) };
    j.running = running;
    running.done = this.execute(j, running).finally(() => {
      if (j.running === running) delete j.running;
    });
    return running;
  }

  private async execute(j: Job, r: Running): Promise<JobRun> {
    const { cfg } = j;
    const { run, controller } = r;
    if (run.trigger !== 'retry') j.stored.retriesLeft = cfg.retries;
    j.stored.running = { id: run.id, startedAt: run.startedAt, trigger: run.trigger };
    j.stored.lastStart = run.startedAt;
    const timeout = setTimeout(() => controller.abort(new StopRun(`timed out after ${cfg.timeout} ms (timeout)`)), cfg.timeout);
    timeout.unref();
    const heldOut: Record<string, string> = {};
    let error: unknown;
    try {
      await this.stores[cfg.kind].save(cfg.name, j.stored);
      const what = cfg.kind === 'sync' ? { source: cfg.source } : { dryRun: cfg.dryRun };
      this.d.events.emit(`${cfg.kind}.started`, { job: cfg.name, run: run.id, trigger: run.trigger, ...what }, cfg.name);
      this.d.log.info({ job: cfg.name, run: run.id, trigger: run.trigger }, `${cfg.kind} run started`);
      r.state = 'SYNCING';
      if (cfg.kind === 'copy') await runCopyJob({ job: cfg, config: this.config, run, signal: controller.signal });
      else await this.runSyncJob(j, cfg, run, controller.signal, heldOut);
    } catch (err) {
      error = controller.signal.aborted ? controller.signal.reason : err;
    } finally {
      clearTimeout(timeout);
    }
    return this.record(j, cfg, run, error, heldOut);
  }

  private async runSyncJob(j: Job, cfg: SyncJobConfig, run: JobRun, signal: AbortSignal, heldOut: Record<string, string>): Promise<void> {
    const src = parseSyncSource(cfg.source);
    if ('problem' in src) throw new StopRun(src.problem);
    const floor = this.config.syncLimits.find((x) => x.host === src.host)?.rateLimitFloor;
    await runSync({
      client: this.d.proxy.client(src.host),
      repository: (repo) => this.d.proxy.repository({ upstream: src.host, repo }),
      meta: this.d.meta,
      forgetTag: (scope, tag) => this.d.proxy.manifests.forgetTag(scope, tag),
      settled: (digest) => this.d.proxy.blobs.settled(digest),
      budget: this.budget(src.host),
      rateLimitFloor: floor,
      workers: this.limitsOf(src.host).concurrency,
      now: this.d.now,
    }, { job: cfg, held: j.stored.held, signal, run, heldOut });
  }

  /** Records a finished run: state, history, retries, events; schedules the next. */
  private async record(j: Job, cfg: JobConfig, run: JobRun, error: unknown, heldOut: Record<string, string>): Promise<JobRun> {
    if (error instanceof ShuttingDown) {
      run.result = 'INTERRUPTED';
      run.error = error.message;
      return run;
    }
    run.endedAt = new Date(this.d.now()).toISOString();
    if (error instanceof Cancelled) run.result = 'CANCEL';
    else if (error !== undefined) run.result = 'FAIL';
    else if (run.counts.failed > 0) run.result = 'FAIL';
    else run.result = 'SUCCESS';
    if (error !== undefined) run.error = ((error as Error).message ?? String(error)).slice(0, 500);
    else if (run.counts.failed > 0) {
      const first = run.tags?.find((t) => t.outcome === 'failed');
      const what = cfg.kind === 'copy' ? 'images' : 'tags';
      run.error = `${run.counts.failed} of ${run.counts.synced + run.counts.unchanged + run.counts.failed} ${what} failed; first: ${first?.ref}: ${first?.reason}`;
    }
    if (this.jobs.get(cfg.name) !== j) {
      // Removed from the config meanwhile: its state is gone; the run still gets its end event.
      this.finished(cfg, run);
      return run;
    }
    const st = j.stored;
    // The config may have changed during the run: hold only what the job still matches.
    const keep = this.stillMatches(j.cfg);
    st.held = Object.fromEntries(Object.entries(heldOut).filter(([ref]) => keep(ref)));
    delete st.running;
    st.state = run.result;
    st.lastEnd = run.endedAt;
    if (run.result === 'SUCCESS') {
      st.lastSuccess = run.endedAt;
      delete st.lastError;
    } else st.lastError = run.error!;
    // History keeps per-tag outcomes only for failures (bounded); counts tell the rest.
    const kept: JobRun = { ...run, ...(run.tags ? { tags: run.tags.filter((t) => t.outcome === 'failed').slice(0, 50) } : {}) };
    pushHistory(st, kept);
    const retry = run.result === 'FAIL' ? retryAt(cfg, st.retriesLeft ?? 0, this.d.now()) : undefined;
    if (retry !== undefined) st.retriesLeft = (st.retriesLeft ?? 0) - 1;
    try {
      await this.stores[cfg.kind].save(cfg.name, st);
    } catch (err) {
      this.d.log.error({ job: cfg.name, err: (err as Error).message }, `cannot record the ${cfg.kind} run`);
    }
    this.recomputeHeld();
    this.finished(cfg, run);
    if (this.started) {
      delete j.running;
      this.schedule(j, retry);
    }
    return run;
  }

  private finished(cfg: JobConfig, run: JobRun): void {
    const type = `${cfg.kind}.${run.result === 'SUCCESS' ? 'succeeded' : run.result === 'CANCEL' ? 'cancelled' : 'failed'}` as const;
    this.syncMetrics.runs.inc({ job: cfg.name, result: run.result! });
    if (run.bytes > 0) this.syncMetrics.bytes.inc({ job: cfg.name }, run.bytes);
    const data = { job: cfg.name, run: run.id, result: run.result, counts: run.counts, bytes: run.bytes, ...(run.error ? { error: run.error } : {}) };
    this.d.log[run.result === 'SUCCESS' ? 'info' : 'warn']({ ...data, trigger: run.trigger }, `${cfg.kind} run finished`);
    this.d.events.emit(type, data, cfg.name);
  }

  private webhookOutcome(e: RegcacheEvent, o: { webhook: string; url: string; ok: boolean; at: string; status?: number; error?: string }): void {
    this.syncMetrics.webhooks.inc({ webhook: o.webhook, result: o.ok ? 'ok' : 'failed' });
    const j = e.subject !== undefined ? this.jobs.get(e.subject) : undefined;
    if (!j) return;
    j.stored.lastWebhook = { url: o.url, ok: o.ok, at: o.at, ...(o.status !== undefined ? { status: o.status } : {}), ...(o.error !== undefined ? { error: o.error } : {}) };
    // Saved with the job's next write if this one fails: status is best effort.
    if (!j.running) this.stores[j.cfg.kind].save(j.cfg.name, j.stored).catch(() => undefined);
  }

  private stillMatches(cfg: JobConfig): (ref: string) => boolean {
    // Scheduled copies write to other registries: they hold nothing in the cache.
    if (cfg.kind === 'copy') return () => false;
    const src = parseSyncSource(cfg.source);
    const filter = compileTagFilter({ include: cfg.tags, exclude: cfg.excludeTags, semver: cfg.semver });
    return (ref) => {
      const colon = ref.lastIndexOf(':');
      const repo = ref.slice(0, colon);
      if ('problem' in src) return false;
      if (src.kind === 'repository' ? repo !== src.repo : !repo.startsWith(`${src.prefix}/`)) return false;
      return filter(ref.slice(colon + 1));
    };
  }

  private recomputeHeld(): void {
    const s = new Set<string>();
    for (const j of this.jobs.values()) for (const d of Object.values(j.stored.held)) s.add(d);
    this.heldDigests = s;
  }
}
