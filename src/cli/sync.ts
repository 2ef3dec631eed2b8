/**
 * `regcache sync list | status NAME | now NAME [--wait] | cancel NAME`: the sync jobs and
 * scheduled copies of the running server, over its admin API (/api/v1/sync) on the main listener from the same
 * config and overrides as `serve` (0.0.0.0 and :: are reached on loopback). With `auth` in
 * the config, credentials come from --username and --password-file (or REGCACHE_USERNAME
 * and REGCACHE_PASSWORD). `--json` prints the API's answer as it is.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { JobDetail, JobRun, JobSummary } from '../jobs/job-control.js';
import { parseArgs, UsageError, type CliIo, type Command } from './args.js';
import { mainUrl } from './healthcheck.js';
import { loadCommandConfig } from './overrides.js';
import { createProgress } from './progress.js';
import { waitForRun } from './sync-wait.js';

const HELP = `usage: regcache sync list|status NAME|now NAME|cancel NAME [--wait] [--json] [--config FILE] [--listen HOST:PORT] [--username U --password-file F]

Talks to the running regcache: the main listener of the config (0.0.0.0 and :: are reached
on loopback), or --listen. Jobs are sync jobs (sync.<name>) and scheduled copies (copy.<name>).
  list      every job: state, last run, next run
  status    one job: state, counts, last error, last webhook delivery, recent runs
  now       start a run now
  cancel    cancel the job's running run (exit 1 when none was running)
  --wait                 with now: wait for the run's end, showing its progress on stderr
                         (a bar on a terminal, plain lines otherwise); exit 0 only when it succeeded
  --json                 print the API's JSON answer
  --config FILE          the config to take the listener from (default: as serve)
  --listen HOST:PORT     the server's main listener, instead of the config's
  --username U           with auth configured (or REGCACHE_USERNAME)
  --password-file F      that user's password, first line (or REGCACHE_PASSWORD)
`;

interface Answer { status: number; body: unknown }

function call(url: string, method: 'GET' | 'POST', auth: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (auth) headers.authorization = auth;
    // Loopback to our own server: the TLS certificate is the server's own, often self-signed.
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: shown as text.
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function errorText(a: Answer): string {
  const e = (a.body as { errors?: Array<{ message?: string }> })?.errors?.[0];
  return `${a.status}${e?.message ? `: ${e.message}` : ''}`;
}

function counts(r: JobRun | undefined): string {
  if (!r) return '-';
  const c = r.counts;
  return `${c.synced} synced, ${c.unchanged} unchanged, ${c.failed} failed${c.pending ? `, ${c.pending} pending` : ''}`;
}

function printList(io: CliIo, jobs: JobSummary[]): void {
  if (jobs.length === 0) {
    io.stdout('no sync or copy jobs configured\n');
    return;
  }
  const rows = [['NAME', 'STATE', 'LAST END', 'NEXT RUN', 'LAST RUN']];
  for (const j of jobs) rows.push([j.name, j.enabled ? j.state : `${j.state} (disabled)`, j.lastEnd ?? '-', j.nextRun ?? '-', counts(j.lastRun)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) io.stdout(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
}

function printDetail(io: CliIo, d: JobDetail): void {
  const lines = [
    `${d.name}: ${d.state}${d.enabled ? '' : ' (disabled)'}`,
    `  source     ${String(d.config.source)}  tags ${String(d.config.tags)}`,
    `  last run   ${d.lastStart ?? '-'} .. ${d.lastEnd ?? '-'}  ${counts(d.lastRun)}${d.lastRun ? `, ${d.lastRun.bytes} bytes` : ''}`,
    `  next run   ${d.nextRun ?? '-'}  retries left ${d.retriesLeft ?? '-'}`,
  ];
  if (d.lastError) lines.push(`  last error ${d.lastError}`);
  if (d.lastWebhook) lines.push(`  webhook    ${d.lastWebhook.ok ? 'ok' : 'failed'} ${d.lastWebhook.url} at ${d.lastWebhook.at}${d.lastWebhook.status ? ` (${d.lastWebhook.status})` : ''}${d.lastWebhook.error ? `: ${d.lastWebhook.error}` : ''}`);
  lines.push('  history:');
  for (const r of [...d.history].reverse().slice(0, 10)) {
    lines.push(`    ${r.startedAt} ${(r.result ?? 'RUNNING').padEnd(11)} ${r.trigger.padEnd(8)} ${counts(r)}${r.error ? `  ${r.error}` : ''}`);
  }
  io.stdout(lines.join('\n') + '\n');
}

export const sync: Command = async (argv, io) => {
  const args = parseArgs(argv, { values: ['config', 'listen', 'username', 'password-file'], booleans: ['help', 'wait', 'json'] });
  if (args.booleans.has('help')) {
    io.stdout(HELP);
    return 0;
  }
  const [action, name, ...extra] = args.positionals;
  if (!action || !['list', 'status', 'now', 'cancel'].includes(action)) throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : 'missing action (list, status, now, cancel)');
  if (action !== 'list' && !name) throw new UsageError(`sync ${action} needs a job name`);
  if ((action === 'list' && name) || extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(action === 'list' ? name : extra[0])}`);
  if (args.booleans.has('wait') && action !== 'now') throw new UsageError('--wait goes with sync now');
  const { config } = loadCommandConfig(args.flags, io.env);
  const user = args.flags.username ?? io.env.REGCACHE_USERNAME;
  let password = io.env.REGCACHE_PASSWORD;
  if (args.flags['password-file'] !== undefined) password = readFileSync(args.flags['password-file'], 'utf8').replace(/\r?\n$/, '');
  const auth = user !== undefined ? `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}` : undefined;

  const base = mainUrl(config);
  // --wait with --json: the server waits and answers the run; without --json the CLI polls to show progress.
  const serverWaits = args.booleans.has('wait') && args.booleans.has('json');
  const jobPath = `/api/v1/sync/${encodeURIComponent(name ?? '')}`;
  const path = action === 'list' ? '/api/v1/sync' : action === 'status' ? jobPath : `${jobPath}/${action}${serverWaits ? '?wait=1' : ''}`;
  const request = async (method: 'GET' | 'POST', p: string): Promise<Answer> => {
    let a: Answer;
    try {
      a = await call(base + p, method, auth);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') throw new Error(`regcache is not running at ${base} (connection refused); start it with regcache serve, or give --listen`);
      throw new Error(`cannot reach regcache at ${base}: ${code ?? (err as Error).message}`);
    }
    if (a.status === 401) throw new Error(`${base} needs credentials for the sync API: --username and --password-file (or REGCACHE_USERNAME/REGCACHE_PASSWORD)`);
    if (a.status >= 400) throw new Error(`${action} ${name ?? ''}: ${errorText(a)}`.replace('  ', ' '));
    return a;
  };
  const a = await request(action === 'list' || action === 'status' ? 'GET' : 'POST', path);
  if (args.booleans.has('json')) {
    io.stdout(JSON.stringify(a.body, null, 2) + '\n');
  } else if (action === 'list') printList(io, (a.body as { jobs: JobSummary[] }).jobs);
  else if (action === 'status') printDetail(io, a.body as JobDetail);
  else if (action === 'cancel') {
    const cancelled = (a.body as { cancelled: boolean }).cancelled;
    io.stdout(cancelled ? `${name}: cancelled\n` : `${name}: not running, nothing to cancel\n`);
    return cancelled ? 0 : 1;
  }
  if (action === 'now') {
    let run = (a.body as { run: JobRun }).run;
    if (args.booleans.has('wait') && !serverWaits) {
      run = await waitForRun(run.id, async () => (await request('GET', jobPath)).body as JobDetail, createProgress(`sync: ${name}`, io));
    }
    if (!args.booleans.has('json')) {
      io.stdout(args.booleans.has('wait') ? `${name}: ${run.result} (${counts(run)}, ${run.bytes} bytes)${run.error ? `: ${run.error}` : ''}\n` : `${name}: run ${run.id} started\n`);
    }
    if (args.booleans.has('wait')) return run.result === 'SUCCESS' ? 0 : 1;
  }
  return 0;
};
