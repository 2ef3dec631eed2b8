/**
 * config/prometheus/alerts.yaml with Prometheus's own checker (issue 14): `promtool check
 * rules` accepts it and `promtool test rules` runs alerts.test.yaml, where each alert fires
 * when it should and stays quiet just before.
 */
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../helpers/children.js';
import { requireTools } from '../helpers/require-tools.js';

const DIR = resolve(import.meta.dirname, '..', '..', 'config', 'prometheus');

describe('config/prometheus/alerts.yaml', () => {
  beforeAll(() => requireTools(['promtool']));

  it('promtool check rules accepts it, with every alert the issue asks for', async () => {
    const r = await runCommand('promtool', ['check', 'rules', join(DIR, 'alerts.yaml')], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS: 6 rules found');
  });

  it('promtool test rules passes alerts.test.yaml', async () => {
    const r = await runCommand('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: DIR, timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });
});
