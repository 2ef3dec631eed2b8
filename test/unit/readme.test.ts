/**
 * The README's command line (issue 15 item 21): its synopsis names exactly the flags each
 * command's --help shows, every command is listed, and its `mirror add` examples work on the
 * default config.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliIo, Command } from '../../src/cli/args.js';
import { containerdConfig } from '../../src/cli/containerd-config.js';
import { copy } from '../../src/cli/copy.js';
import { fsck } from '../../src/cli/fsck.js';
import { gc } from '../../src/cli/gc.js';
import { healthcheck } from '../../src/cli/healthcheck.js';
import { mirror } from '../../src/cli/mirror.js';
import { serve } from '../../src/cli/serve.js';
import { sync } from '../../src/cli/sync.js';
import { planAdd } from '../../src/config/edit.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

const COMMANDS: Record<string, Command> = {
  serve, mirror, 'containerd-config': containerdConfig, gc, fsck, healthcheck, copy, sync,
};

async function help(cmd: Command): Promise<string> {
  let out = '';
  const io: CliIo = { stdout: (s) => void (out += s), stderr: () => undefined, env: {} };
  expect(await cmd(['--help'], io)).toBe(0);
  return out;
}

const flags = (text: string): string[] => [...new Set(text.match(/--[a-z][a-z-]*/g) ?? [])].filter((f) => f !== '--help').sort();

/** The flags a --help text offers: its usage line and the option lines (a flag within the first two words); not prose. */
const helpFlags = (text: string): string[] =>
  flags(text.split('\n').filter((l) => l.startsWith('usage:') || /^\s*(\S+\s+)?\[?--/.test(l)).join('\n'));

/** The README's synopsis block: the code block under "### Command line"; continuation lines join the command above. */
function synopsis(): Map<string, string> {
  const section = readme.slice(readme.indexOf('### Command line'));
  const block = /```\n([\s\S]*?)```/.exec(section)![1]!;
  const out = new Map<string, string>();
  let last = '';
  for (const line of block.split('\n')) {
    const m = /^regcache ([a-z-]+)/.exec(line);
    if (m) last = m[1]!;
    else if (!/^\s+\S/.test(line)) continue;
    out.set(last, `${out.get(last) ?? ''} ${line}`);
  }
  return out;
}

describe('README command synopsis', () => {
  const syn = synopsis();
  for (const [name, cmd] of Object.entries(COMMANDS)) {
    it(`regcache ${name}: the same flags as --help`, async () => {
      expect(syn.has(name), `README synopsis lacks regcache ${name}`).toBe(true);
      expect(flags(syn.get(name)!)).toEqual(helpFlags(await help(cmd)));
    });
  }

  it('every `regcache mirror add --host H` example works on the default config', () => {
    const text = readFileSync(join(ROOT, 'config', 'regcache.yaml'), 'utf8');
    const hosts = [...readme.matchAll(/regcache mirror add --host ([a-z0-9.:-]+)/g)].map((m) => m[1]!);
    expect(hosts.length).toBeGreaterThan(0);
    for (const host of hosts) expect(() => planAdd(text, {}, { host }, 'config/regcache.yaml'), host).not.toThrow();
  });
});
