/** wrk (HTTP load generator) with a Lua script that sets headers and prints its summary as one JSON line. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, tmpDir } from '../../../test/helpers/index.js';

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Latency percentiles, milliseconds. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Responses other than 2xx/3xx. */
  non2xx: number;
  /** connect/read/write/timeout errors. */
  socketErrors: number;
}

const LUA = (headers: Record<string, string>, method: string): string => `
wrk.method = "${method}"
${Object.entries(headers)
  .map(([k, v]) => `wrk.headers["${k}"] = "${v.replace(/"/g, '\\"')}"`)
  .join('\n')}
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
`;

export interface WrkOptions {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  headers?: Record<string, string>;
  method?: string;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const dir = tmpDir('regcache-bench-wrk-');
  const script = join(dir, 'bench.lua');
  writeFileSync(script, LUA(o.headers ?? {}, o.method ?? 'GET'));
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.durationS}s`, '--timeout', '5s', '-s', script, o.url];
  const r = await runCommand('wrk', args, { timeoutMs: (o.durationS + 30) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (r.code !== 0 || !line) throw new Error(`wrk ${args.join(' ')} failed (code ${r.code}): ${r.stderr}\n${r.stdout}`);
  const j = JSON.parse(line.slice(8)) as Record<string, number>;
  const durationS = j.duration_us! / 1e6;
  return {
    requests: j.requests!,
    durationS,
    rps: j.requests! / durationS,
    p50Ms: j.p50! / 1000,
    p90Ms: j.p90! / 1000,
    p99Ms: j.p99! / 1000,
    maxMs: j.max! / 1000,
    non2xx: j.status!,
    socketErrors: j.connect! + j.read! + j.write! + j.timeout!,
  };
}
