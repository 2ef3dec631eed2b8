/**
 * The Dockerfile cannot be built on these machines (no Docker engine), so its promises are
 * checked by parsing it (issue 15 items 15, 16).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');

interface Instruction { stage: number; op: string; args: string }

/** Instructions with continuation lines joined and comments dropped; `stage` counts FROMs from 0. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ stage, op, args: m[2]!.replace(/\s+/g, ' ') });
  }
  return out;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

describe('Dockerfile', () => {
  it('HEALTHCHECK runs `regcache healthcheck`, which follows the configured listener (no hard-coded address)', () => {
    const hc = dockerfile.filter((i) => i.op === 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const cmd = /\bCMD (\[.*\])$/.exec(hc[0]!.args);
    expect(cmd, hc[0]!.args).not.toBeNull();
    const argv = JSON.parse(cmd![1]!) as string[];
    expect(argv.slice(0, 3)).toEqual(['node', 'dist/cli.js', 'healthcheck']);
    expect(hc[0]!.args).not.toMatch(/127\.0\.0\.1|:5000|localhost/);
    // The same entry point the image runs.
    expect(dockerfile.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["node", "dist/cli.js"]');
  });

  it('the runtime image gets better-sqlite3 without its build leftovers (sources, objects, static library)', () => {
    const build = dockerfile.filter((i) => i.stage === 0);
    const runtime = dockerfile.filter((i) => i.stage === 1);
    const prune = build.findIndex((i) => i.op === 'RUN' && i.args.includes('npm prune --omit=dev'));
    const trim = build.findIndex((i) => i.op === 'RUN' && i.args.includes('cd node_modules/better-sqlite3'));
    expect(prune).toBeGreaterThanOrEqual(0);
    expect(trim).toBeGreaterThan(prune);
    const t = build[trim]!.args;
    expect(t).toContain('rm -rf build deps src');
    expect(t).toContain('build/Release/better_sqlite3.node');
    // The trimmed module is loaded once in the build, so a broken trim fails the build.
    expect(t).toMatch(/node -e ".*require\('better-sqlite3'\).*"/);
    expect(runtime.some((i) => i.op === 'COPY' && i.args === '--from=build /src/node_modules ./node_modules')).toBe(true);
  });

  it('runs as the non-root node user with the data dir it owns', () => {
    const runtime = dockerfile.filter((i) => i.stage === 1);
    expect(runtime.some((i) => i.op === 'USER' && i.args === 'node')).toBe(true);
    expect(runtime.some((i) => i.op === 'RUN' && i.args.includes('chown node:node /data'))).toBe(true);
  });
});
