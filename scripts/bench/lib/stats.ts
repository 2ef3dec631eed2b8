/** Small statistics and formatting helpers. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, 0 when n < 2. */
  spread: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(xs: number[]): Summary | undefined {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  const med = median(v);
  const min = Math.min(...v);
  const max = Math.max(...v);
  return { n: v.length, median: med, min, max, spread: v.length > 1 && med !== 0 ? (max - min) / med : 0 };
}

/** A number with about 3 significant digits (no exponent). */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

/** `median (min–max)`, or just the value for one sample; '—' when there is none. */
export function fmtSummary(s: Summary | undefined, unit = ''): string {
  if (!s) return '—';
  const u = unit ? ` ${unit}` : '';
  if (s.n === 1 || s.min === s.max) return `${fmtNum(s.median)}${u}`;
  return `${fmtNum(s.median)}${u} (${fmtNum(s.min)}–${fmtNum(s.max)})`;
}

export const MiB = 1024 * 1024;

export function mib(bytes: number): number {
  return bytes / MiB;
}

/** Runs `fn` over items with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
