/**
 * The event bus: things that happened (sync and copy runs, upstream up/down, evictions,
 * digest mismatches), kept in a bounded ring of recent events and pushed to subscribers
 * (the admin API's server-sent-events stream, webhooks, the log). Events are CloudEvents-
 * shaped so a webhook body is the event itself.
 */

export type EventType =
  | 'sync.started' | 'sync.succeeded' | 'sync.failed' | 'sync.cancelled'
  | 'copy.started' | 'copy.succeeded' | 'copy.failed' | 'copy.cancelled'
  | 'upstream.down' | 'upstream.up'
  | 'retention.evicted'
  | 'digest.mismatch';

export interface RegcacheEvent {
  /** Unique per process, increasing (also the SSE id). */
  id: string;
  type: EventType;
  /** ISO 8601. */
  time: string;
  /** What the event is about: a job name, an upstream host. */
  subject?: string;
  data: Record<string, unknown>;
}

export type EventListener = (e: RegcacheEvent) => void;

export class EventBus {
  private readonly ring: RegcacheEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private seq = 0;

  constructor(private readonly capacity = 1000, private readonly now: () => number = Date.now) {}

  emit(type: EventType, data: Record<string, unknown>, subject?: string): RegcacheEvent {
    const e: RegcacheEvent = { id: String(++this.seq), type, time: new Date(this.now()).toISOString(), data };
    if (subject !== undefined) e.subject = subject;
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure never reaches the code that emitted the event.
      }
    }
    return e;
  }

  /** Recent events, oldest first, optionally only those after `afterId` or of some types. */
  recent(opts: { afterId?: string; types?: readonly string[]; limit?: number } = {}): RegcacheEvent[] {
    const after = opts.afterId === undefined ? 0 : Number(opts.afterId);
    const out = this.ring.filter((e) => Number(e.id) > after && (!opts.types || opts.types.some((t) => e.type === t || e.type.startsWith(`${t}.`))));
    return opts.limit === undefined ? out : out.slice(-opts.limit);
  }

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
