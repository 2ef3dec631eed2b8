/**
 * The page at /ui/ in a real browser: Debian's chromium driven by playwright-core (never a
 * downloaded browser), against regcache in-process in front of the fake upstream (which
 * counts every request) and its real sync jobs service.
 * Screenshots go to a temp directory, or to docs/img/ (the README's) with UPDATE_SCREENSHOTS=1,
 * so a test run never changes tracked files.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from '../component/proxy-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const IMG = process.env.UPDATE_SCREENSHOTS === '1' ? join(import.meta.dirname, '../../docs/img') : mkdtempSync(join(tmpdir(), 'regcache-ui-shots-'));

describe('the page in chromium', () => {
  let browser: Browser;
  let h: ProxyHarness | undefined;
  let page: Page | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error('chromium is missing: run `apt-get install -y --no-install-recommends chromium` (scripts/install-deps.sh)');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
      // playwright gives every launch a fresh temporary profile (--user-data-dir) and removes it.
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await page?.close();
    page = undefined;
    await h?.close();
    h = undefined;
  });

  async function open(config: Record<string, unknown> = {}): Promise<{ h: ProxyHarness; page: Page; base: string }> {
    h = await startProxy(config);
    const base = `http://127.0.0.1:${h.app.mainPort}`;
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    // Loopback only: any request elsewhere fails the test.
    await page.route('**/*', (route) => (new URL(route.request().url()).hostname === '127.0.0.1' ? route.continue() : route.abort()));
    return { h, page, base };
  }

  function seed(hh: ProxyHarness, repo: string, tag: string): void {
    const p = imageParts(`${repo}:${tag}`);
    hh.up.putBlob(repo, p.config);
    hh.up.putBlob(repo, p.layer);
    hh.up.putManifest(repo, p.manifest, 'application/vnd.oci.image.manifest.v1+json', tag);
  }

  it('an upstream stopped mid-test shows as down within seconds', async () => {
    const { h, page, base } = await open({ upstreamHealth: { maxFails: 1, failTimeout: '1m' } });
    seed(h, 'lib/app', 'v1');
    expect((await fetch(`${base}/v2/${HOST}/lib/app/manifests/v1`)).status).toBe(200);
    await page.goto(`${base}/ui/`);
    const state = page.locator(`[data-upstream="${HOST}"]`);
    await expect.poll(() => state.textContent(), { timeout: 10_000 }).toBe('up');
    await page.screenshot({ path: join(IMG, 'ui-overview.png'), fullPage: true });
    // Stop the upstream: no new connections, and the kept-alive ones are cut.
    void h.up.close();
    h.up.script = (_req, res) => {
      res.socket?.destroy();
      return true;
    };
    expect((await fetch(`${base}/v2/${HOST}/lib/app/manifests/${'sha256:' + 'a'.repeat(64)}`)).status).toBeGreaterThanOrEqual(500);
    await expect.poll(() => state.textContent(), { timeout: 10_000 }).toBe('down');
    await expect.poll(() => page.locator('#events-list').textContent(), { timeout: 10_000 }).toContain('upstream.down');
  });

  it('refreshing a tag from the page causes exactly one upstream HEAD', async () => {
    const { h, page, base } = await open();
    seed(h, 'lib/app', 'v1');
    seed(h, 'lib/other', 'latest');
    await fetch(`${base}/v2/${HOST}/lib/app/manifests/v1`);
    await fetch(`${base}/v2/${HOST}/lib/other/manifests/latest`);
    await page.goto(`${base}/ui/`);
    await page.getByLabel('Search repositories').fill('app');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: `Show ${HOST}/lib/app` }).click();
    const refresh = page.getByRole('button', { name: 'Refresh v1' });
    await refresh.waitFor();
    await page.screenshot({ path: join(IMG, 'ui-repository.png'), fullPage: true });
    const before = h.up.requests.length;
    await refresh.click();
    await expect.poll(() => page.locator('#live').textContent(), { timeout: 10_000 }).toContain('is current');
    expect(h.up.requests.slice(before).map((r) => `${r.method} ${r.kind}`)).toEqual(['HEAD manifest']);
  });

  it('sync-now clicked shows the job go through SYNCING to SUCCESS', async () => {
    const { h, page, base } = await open({ sync: { nightly: { source: `${HOST}/library/app`, tags: 'v*', startAt: '2027-01-01T00:00:00Z' } } });
    seed(h, 'library/app', 'v1');
    seed(h, 'library/app', 'v2');
    // The upstream holds the run's manifest requests until the page has shown SYNCING:
    // a slow upstream, as slow as the page needs and no slower.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    h.up.script = async (r) => {
      if (r.kind === 'manifest') await gate;
      return false;
    };
    await page.goto(`${base}/ui/`);
    const status = page.locator('[data-job="nightly"]');
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('SCHEDULED');
    await page.getByRole('button', { name: 'Sync nightly now' }).click();
    try {
      await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('SYNCING');
    } finally {
      release();
    }
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('SUCCESS');
    await page.getByRole('button', { name: 'History of nightly' }).click();
    await expect.poll(() => page.locator('#job-history').textContent(), { timeout: 10_000 }).toContain('now SUCCESS: 2 synced, 0 unchanged, 0 failed');
    // The page shows the content the run synced, pinned by the job.
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: `Show ${HOST}/library/app` }).click();
    await expect.poll(() => page.locator('#tags').textContent(), { timeout: 10_000 }).toContain('pinned by a job');
    expect(await page.locator('#tags tbody tr').count()).toBe(2);
    await page.screenshot({ path: join(IMG, 'ui-jobs.png'), fullPage: true });
  });
});
