/**
 * Retention as a service: a sweep every retention.interval (0: none), and sweeps on demand
 * (admission before a fill, `regcache gc`). Sweeps never overlap: a request for one while
 * another runs waits for it, then runs its own.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { NOTHING_TO_RELOAD, type ReloadResult, type Service } from '../service.js';
import { sweep, type EvictedUnit, type EvictionDeps, type SweepOptions, type SweepPlan } from './eviction.js';

export interface RetentionObserver {
  /** Each batch a sweep removed, as it goes (metrics: a long background sweep is seen while it runs). */
  removed(units: EvictedUnit[]): void;
  /** A sweep that removed something, when it ends (log, event). */
  evicted(plan: SweepPlan): void;
}

/** A server's own sweeps (interval, admission) take at most this share of the event loop (eviction.ts, `pace`). */
export const SERVER_PACE = 0.5;

export class RetentionService implements Service {
  readonly name = 'retention';
  private running: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Aborted by stop(): a sweep in progress ends after its current batch. */
  private stopping = new AbortController();

  constructor(
    private config: Config,
    private readonly deps: EvictionDeps,
    private readonly log: Logger,
    private readonly observer: RetentionObserver,
    private readonly now: () => number,
    /** Replicas: periodic sweeps run only while this says so (the leader). */
    private readonly periodic: () => boolean = () => true,
  ) {}

  /** One sweep with the current policy (serialised with any other). */
  sweep(opts: SweepOptions = {}): Promise<SweepPlan> {
    const run = async (): Promise<SweepPlan> => {
      const { maxAge, maxSize } = this.config.retention;
      const plan = await sweep(this.deps, { maxAge, maxSize }, this.now(), opts.dryRun ? opts : {
        ...opts,
        signal: opts.signal ?? this.stopping.signal,
        onUnits: (units) => {
          this.observer.removed(units);
          opts.onUnits?.(units);
        },
      });
      if (!opts.dryRun && plan.counts.units > 0) {
        this.observer.evicted(plan);
        const { units, age, size } = plan.counts;
        this.log.info({ units, bytesFreed: plan.bytesFreed, reasons: [...(age ? ['age'] : []), ...(size ? ['size'] : [])] }, 'retention sweep');
      }
      return plan;
    };
    const p = this.running.then(run, run);
    this.running = p.catch(() => undefined);
    return p;
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    const { interval, maxAge, maxSize } = this.config.retention;
    if (interval <= 0 || (maxAge === undefined && maxSize === undefined)) return;
    this.timer = setInterval(() => {
      if (!this.periodic()) return;
      this.sweep({ summaryOnly: true, pace: SERVER_PACE }).catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'retention sweep failed'));
    }, interval);
    this.timer.unref();
  }

  async start(): Promise<void> {
    if (this.stopping.signal.aborted) this.stopping = new AbortController();
    this.schedule();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopping.abort();
    await this.running;
  }

  async reload(next: Config): Promise<ReloadResult> {
    this.config = next;
    this.schedule();
    return NOTHING_TO_RELOAD;
  }

  async status(): Promise<Record<string, unknown>> {
    return { ...this.config.retention };
  }
}
