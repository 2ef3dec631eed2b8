/** Preconditions shared by the benchmark and the soak: Debian tools installed, dist/ built. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_PATH, REPO_ROOT, whichTool } from '../../../test/helpers/index.js';

/** Makes sure the tools are on PATH, running `bash scripts/install-deps.sh --bench` once when some are missing. */
export function ensureTools(tools: string[]): void {
  let missing = tools.filter((t) => whichTool(t) === undefined);
  if (missing.length === 0) return;
  console.error(`missing ${missing.join(', ')}: running bash scripts/install-deps.sh --bench`);
  const r = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'install-deps.sh'), '--bench'], { stdio: 'inherit', cwd: REPO_ROOT });
  missing = tools.filter((t) => whichTool(t) === undefined);
  if (r.status !== 0 || missing.length > 0) {
    throw new Error(`still missing ${missing.join(', ') || '(install script failed)'}: run, as root, bash scripts/install-deps.sh --bench`);
  }
}

export function ensureBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first (npm run bench does it)`);
}

export function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '?';
}

const started = Date.now();

/** Progress on stderr with the elapsed time. */
export function log(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${s}s] ${msg}\n`);
}

/** `--name value` and `--flag` arguments. */
export function parseFlags(argv: string[], booleans: string[]): { values: Map<string, string>; flags: Set<string> } {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.includes(name)) {
      flags.add(name);
      continue;
    }
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new Error(`--${name} needs a value`);
    values.set(name, v);
  }
  return { values, flags };
}
