/**
 * The pino logger: JSON lines by default; a compact human-readable form when stdout is a
 * TTY (logFormat auto) or logFormat is pretty. Credentials are redacted wherever they
 * could appear.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

const REDACT = ['password', 'authorization', 'headers.authorization', 'req.headers.authorization', 'config.password', '*.password'];

function prettyStream(out: NodeJS.WritableStream): Writable {
  const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
  return new Writable({
    write(chunk: Buffer, _enc, cb): void {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const { level, time, msg, pid: _p, hostname: _h, ...rest } = o;
          const t = new Date(Number(time)).toISOString().slice(11, 23);
          const extra = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
          out.write(`${t} ${(levels[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? '')} ${extra}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      cb();
    },
  });
}

export function createLogger(level: string, format: 'json' | 'pretty' | 'auto', out: NodeJS.WritableStream & { isTTY?: boolean }, pid: number): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  const opts = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid } };
  return pretty ? pino(opts, prettyStream(out)) : pino(opts, pino.destination({ dest: 1, sync: false }));
}
