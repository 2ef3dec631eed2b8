/**
 * A service: one part of a running regcache with a lifecycle. The App (app.ts) is a list of
 * these, started in order and stopped in reverse. A service does no I/O in its constructor.
 */
import type { Config } from './config/types.js';

export interface ReloadResult {
  /** Config keys this service saw change but can only apply after a restart. */
  restartNeeded: string[];
  /** Changes that were asked for but did not apply (e.g. a port that would not bind). */
  failed: string[];
  /** What changed, for the reload log line. */
  changes?: Record<string, unknown>;
}

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Stops, letting in-flight work finish for up to `graceMs`. */
  stop(graceMs: number): Promise<void>;
  reload(next: Config, prev: Config): Promise<ReloadResult>;
  /** A small summary for logs, /readyz and the admin API. */
  status(): Promise<Record<string, unknown>>;
}

export const NOTHING_TO_RELOAD: ReloadResult = { restartNeeded: [], failed: [] };
