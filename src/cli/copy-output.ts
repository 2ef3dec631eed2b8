/**
 * What `regcache copy` prints: a line per image as it ends (text) or a JSON line per image
 * and one for the summary (json); on a terminal, above those lines, a live display of
 * every image in flight and the total (bytes and rate), drawn by cli-progress.
 */
import type cliProgressTypes from 'cli-progress';
import { formatBytes } from '../config/units.js';
import type { CopyEvent, CopyRunResult, ImageResult } from '../transfer/run-copy.js';
import type { CliIo } from './args.js';

export type OutputFormat = 'text' | 'json';

function rate(bytes: number, ms: number): string {
  return `${formatBytes(ms > 0 ? Math.round((bytes * 1000) / ms) : 0)}/s`;
}

/** One text line (plus note lines) for a finished image. */
export function imageLine(r: ImageResult, dryRun: boolean): string {
  const dest = r.destination ? ` -> ${r.destination}` : '';
  if (r.status === 'failed' || r.status === 'skipped' || r.status === 'not-started') {
    const why = r.status === 'not-started' ? 'not started after an earlier failure (use --continue-on-error)' : r.error ?? '';
    return `${r.status.padEnd(9)} ${r.source}${dest}: ${why}\n`;
  }
  const p = r.report!;
  const verb = r.status === 'unchanged' ? 'unchanged' : dryRun ? 'would copy' : 'copied';
  const digest = p.destinationDigest === p.digest ? p.digest : `${p.digest} as ${p.destinationDigest}`;
  const blobs = dryRun
    ? `blobs: ${p.blobs.sent} to send (${formatBytes(p.bytes.sent)}), ${p.blobs.mounted} to mount, ${p.blobs.present} already there (${formatBytes(p.bytes.present)})`
    : `blobs: ${p.blobs.sent} sent (${formatBytes(p.bytes.sent)}), ${p.blobs.mounted} mounted, ${p.blobs.present} already there (${formatBytes(p.bytes.present)})`;
  const platforms = p.platforms ? `; platforms ${p.platforms.join(', ')}` : '';
  const notes = p.notes.map((n) => `  note: ${n}\n`).join('');
  return `${verb.padEnd(9)} ${r.source}${dest} ${digest} (${blobs}${platforms})\n${notes}`;
}

export function summaryLine(r: CopyRunResult, dryRun: boolean, ms: number): string {
  const c = r.counts;
  const done = dryRun ? `${c.planned} to copy` : `${c.copied} copied`;
  const parts = [done, `${c.unchanged} unchanged`, `${c.failed} failed`, `${c.skipped} skipped`];
  if (c['not-started']) parts.push(`${c['not-started']} not started`);
  const bytes = dryRun ? `${formatBytes(r.bytesSent)} to send` : `${formatBytes(r.bytesSent)} sent in ${(ms / 1000).toFixed(1)} s (${rate(r.bytesSent, ms)})`;
  return `${parts.join(', ')}; ${bytes}\n`;
}

export interface CopyOutput {
  onEvent(e: CopyEvent): void;
  finish(r: CopyRunResult, ms: number): void;
}

export async function createOutput(io: CliIo, format: OutputFormat, dryRun: boolean): Promise<CopyOutput> {
  const started = Date.now();
  if (format === 'json') {
    return {
      onEvent(e) {
        if (e.type === 'image') io.stdout(JSON.stringify({ type: 'image', dryRun, ...e.result }) + '\n');
        else if (e.type === 'retry') io.stdout(JSON.stringify(e) + '\n');
      },
      finish(r, ms) {
        io.stdout(JSON.stringify({ type: 'summary', dryRun, counts: r.counts, bytesSent: r.bytesSent, bytesPresent: r.bytesPresent, seconds: ms / 1000 }) + '\n');
      },
    };
  }
  const term = io.terminal?.stream;
  if (!term) {
    return {
      onEvent(e) {
        if (e.type === 'image') io.stdout(imageLine(e.result, dryRun));
        else if (e.type === 'retry') io.stderr(`retry     #${e.attempt} in ${(e.delayMs / 1000).toFixed(1)} s: ${e.error}\n`);
      },
      finish(r, ms) {
        io.stdout(summaryLine(r, dryRun, ms));
      },
    };
  }
  // Loaded only for a terminal: piped runs (cron, CI) skip its start-up cost.
  const cliProgress = (await import('cli-progress')).default;
  const multi = new cliProgress.MultiBar({
    stream: term, clearOnComplete: true, hideCursor: false, autopadding: true, fps: 5,
    format: ' {name} | {sent} | {rate}',
  }, cliProgress.Presets.shades_classic);
  let totalBytes = 0;
  let images = 0;
  let done = 0;
  const total = multi.create(1, 0, { name: 'total', sent: '0 B', rate: '' }, {
    format: ' {bar} {value}/{total} images | {sent} | {rate}',
  });
  const bars = new Map<number, { bar: cliProgressTypes.SingleBar; bytes: number; started: number }>();
  const refreshTotal = (): void => total.update(done, { sent: formatBytes(totalBytes), rate: rate(totalBytes, Date.now() - started) });
  return {
    onEvent(e) {
      if (e.type === 'plan') {
        images = e.images + e.problems;
        total.setTotal(Math.max(images, 1));
      } else if (e.type === 'start') {
        bars.set(e.id, { bar: multi.create(1, 0, { name: `${e.source} -> ${e.destination}`, sent: '0 B', rate: '' }), bytes: 0, started: Date.now() });
      } else if (e.type === 'bytes') {
        totalBytes += e.bytes;
        const b = bars.get(e.id);
        if (b) {
          b.bytes += e.bytes;
          b.bar.update(0, { sent: formatBytes(b.bytes), rate: rate(b.bytes, Date.now() - b.started) });
        }
        refreshTotal();
      } else if (e.type === 'retry') {
        multi.log(`retry     #${e.attempt} in ${(e.delayMs / 1000).toFixed(1)} s: ${e.error}\n`);
      } else if (e.type === 'image') {
        done++;
        const b = bars.get(e.id);
        if (b) {
          multi.remove(b.bar);
          bars.delete(e.id);
        }
        multi.log(imageLine(e.result, dryRun));
        refreshTotal();
      }
    },
    finish(r, ms) {
      multi.stop();
      io.stdout(summaryLine(r, dryRun, ms));
    },
  };
}
