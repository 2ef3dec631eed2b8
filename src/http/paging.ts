/** The one paging helper: `n`/`last` over a sorted list, and the `Link` to the next page. */

export const DEFAULT_PAGE = 1000;

/** Query of the next page, as a Link header value for `path` (extra params kept, e.g. ns). */
export function nextLink(path: string, next: { n?: string | number; last: string }, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  if (next.n !== undefined) q.set('n', String(next.n));
  q.set('last', next.last);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return `<${path}?${q}>; rel="next"`;
}

/** Takes a page of `n` from `items` fetched with one extra element: the extra one says there is more. */
export function page<T extends string>(items: T[], n: number): { items: T[]; next?: { n: number; last: T } } {
  const out = items.slice(0, n);
  if (items.length > n && out.length > 0) return { items: out, next: { n, last: out[out.length - 1]! } };
  return { items: out };
}
