/**
 * Upstream health in the max_fails / fail_timeout style: after `maxFails` consecutive
 * failures an upstream is marked down for `failTimeout`, during which requests fail fast
 * instead of each waiting for a timeout. After that one request is let through as a probe.
 */
export class UpstreamHealth {
  private fails = 0;
  private downUntil = 0;
  private probing = false;

  /** When the upstream was last marked down (ms), while it is down. */
  downSince: number | undefined;

  constructor(
    private readonly maxFails: number,
    private readonly failTimeout: number,
    private readonly now: () => number = Date.now,
    /** Called once per transition: down when marked down, up on the first success after. */
    private readonly onChange: (state: 'down' | 'up') => void = () => undefined,
  ) {}

  /** Whether a request may be sent now. */
  allow(): boolean {
    if (this.downUntil === 0) return true;
    if (this.now() < this.downUntil) return false;
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  get isDown(): boolean {
    return this.downUntil !== 0 && this.now() < this.downUntil;
  }

  success(): void {
    this.fails = 0;
    this.downUntil = 0;
    this.probing = false;
    if (this.downSince !== undefined) {
      this.downSince = undefined;
      this.onChange('up');
    }
  }

  failure(): void {
    this.fails++;
    if (this.probing || this.fails >= this.maxFails) {
      this.downUntil = this.now() + this.failTimeout;
      this.probing = false;
      if (this.downSince === undefined) {
        this.downSince = this.now();
        this.onChange('down');
      }
    }
  }
}
