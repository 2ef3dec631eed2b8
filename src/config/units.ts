/**
 * The human units of the config file: durations (`90s`, `5m`, `1h30m`, `7d`) and sizes
 * (`512MiB`, `20GiB`, `1.5GB`). docs/config.md documents these tables; a unit test checks them.
 *
 * Sizes: a unit says its base. IEC `KiB MiB GiB TiB` (and Kubernetes' `Ki Mi Gi Ti`) are powers
 * of 1024, SI `KB MB GB TB` powers of 1000, letter case ignored. Bare `K M G T` are refused:
 * they read as 1024 to some people and 1000 to others, and the difference at `20G` is 1.4 GB.
 */

/** Duration units, in milliseconds. */
export const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Size units (lowercase), in bytes. */
export const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
  ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4,
};

/**
 * Parses `90s`, `5m`, `1h30m`, `7d`, `0` into milliseconds: one or more `<number><unit>` terms,
 * no spaces. A YAML number is seconds. Undefined when malformed or negative.
 */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number' && Number.isFinite(input) && input >= 0) return input * 1000;
  if (typeof input !== 'string') return undefined;
  const s = input.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos === 0 || pos !== s.length) return undefined;
  return Math.round(total);
}

/** Parses `512MiB`, `20GiB`, `1.5GB`, `1048576` into bytes; undefined when malformed or ambiguous (`20G`). */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === 'number' && Number.isFinite(input) && input >= 0) return Math.floor(input);
  if (typeof input !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.floor(Number(m[1]) * unit);
}

/** True for `20G`-style sizes, so the error can say why they are refused. */
export function isAmbiguousSize(input: unknown): boolean {
  return typeof input === 'string' && /^\s*\d+(?:\.\d+)?\s*[kmgtKMGT]\s*$/.test(input);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
