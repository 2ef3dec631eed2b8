/**
 * CPU of one fill read by N in-process readers (no HTTP, no hashing by the readers): the cost
 * of the fill's fan-out alone. Run from the repository root:
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/fill-fanout-inproc.ts [--mib 64] [--readers 20,200,1000]
 *
 * Prints, per reader count, process CPU seconds (user+system, process.cpuUsage) and CPU per reader.
 */
import { fanOut, randomBlob, upstreamBody } from '../../test/component/fill-fanout-harness.js';
import { parseFlags } from './lib/env.js';

const { values } = parseFlags(process.argv.slice(2), []);
const mib = Number(values.get('mib') ?? 64);
const counts = (values.get('readers') ?? '20,200,1000').split(',').map(Number);
const blob = randomBlob(mib * 1024 * 1024);
const rows: string[] = [];
for (const n of counts) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const run = await fanOut({ blob, readers: n, hash: false, body: upstreamBody(blob.bytes) });
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  const bad = run.results.filter((r) => r.outcome !== 'end' || r.bytes !== blob.bytes.length).length;
  if (bad || run.fill.state !== 'done') throw new Error(`${bad} of ${n} readers did not get the whole blob (fill ${run.fill.state})`);
  const s = (cpu.user + cpu.system) / 1e6;
  rows.push(`${mib} MiB, ${String(n).padStart(5)} readers: CPU ${s.toFixed(2)} s (${((s / n) * 1000).toFixed(2)} ms/reader), wall ${wall.toFixed(2)} s`);
  process.stdout.write(`${rows.at(-1)}\n`);
}
