/**
 * The /demo page in a real browser: Debian's Chromium driven by playwright-core
 * against the local stack (demo: true). The whole walk runs in the page — blind,
 * batched sign, unblind + WebCrypto verify, the matching check, a streamed
 * redemption, a replay refused, a retry from the cache — and the page never
 * makes a request to any other origin. Screenshots go to test-artifacts/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startLocalStack, type LocalStack } from '../../src/localStack.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

describe('the /demo page in Chromium', function () {
  this.timeout(120_000);
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const requests: string[] = [];
  const foreign: string[] = [];
  const problems: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (scripts/setup.sh installs it)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await startLocalStack({ config: { demo: true, logLevel: 'silent' } });
    origin = new URL(stack.url).origin;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-first-run'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Every request the page makes passes here: same origin goes on, anything else is recorded and refused.
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      requests.push(`${route.request().method()} ${url}`);
      if (new URL(url).origin === origin) await route.continue();
      else {
        foreign.push(url);
        await route.abort('blockedbyclient');
      }
    });
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // The replay step's 409 is the point of that step; Chromium logs every 4xx as an error.
      if (m.type() === 'error' && !/status of 409/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
  });

  it('runs the whole walk in the page, and the issuer records fit every matching', async () => {
    const res = await page.goto(`${stack.url}/demo`);
    assert.equal(res?.status(), 200);
    const csp = res!.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-[A-Za-z0-9+/=]+'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-1-start.png') });

    // One step by hand, then the rest in one go.
    await page.locator('#next').click();
    await page.locator('#step-directory[data-state="done"]').waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('section.step[data-state="pending"]').count(), 8);
    assert.equal(await page.locator('#next').textContent(), 'Run step 2');
    await page.locator('#run-all').click();
    await page.locator('#status[data-done="true"]').waitFor({ timeout: 90_000 });
    assert.equal(await page.locator('#status[data-error]').count(), 0, await page.locator('#status').textContent() ?? '');
    assert.equal(await page.locator('section.step[data-state="done"]').count(), 9);

    // Verified in the browser (WebCrypto), streamed, refused on replay, served from the cache on retry.
    assert.match((await page.locator('#verified').textContent()) ?? '', /✓ 6 tokens verify/);
    assert.ok(((await page.locator('#answer').textContent()) ?? '').length > 20, 'a streamed answer');
    assert.match((await page.locator('#replay-result').textContent()) ?? '', /^HTTP 4\d\d /);
    assert.match((await page.locator('#retry-result').textContent()) ?? '', /HTTP 200, llmtor-replay: true; same answer: yes/);

    // The matching: all 16 record × token pairs are consistent, whatever order the tokens are in.
    assert.equal(await page.locator('#match-grid td.ok').count(), 16);
    assert.equal(await page.locator('#match-grid td.bad').count(), 0);
    for (let round = 0; round < 3; round++) {
      await page.locator('#shuffle').click();
      await page.locator('#check').click();
      assert.equal(await page.locator('#match-result li.ok').count(), 4);
      assert.equal(await page.locator('#match-result li.bad').count(), 0);
    }
    await page.locator('#step-match').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-3-match.png') });
    await page.locator('#reveal').click();
    assert.match((await page.locator('#match-result').textContent()) ?? '', /checked ✓/);

    for (const id of ['step-directory', 'step-blind', 'step-sign', 'step-finalize', 'step-redeem', 'step-retry']) {
      await page.evaluate(`document.getElementById(${JSON.stringify(id)}).scrollIntoView({ block: 'start' })`);
      await page.screenshot({ path: path.join(ARTIFACTS, `demo-2-${id}.png`) });
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-full.png'), fullPage: true });

    // The RFC names are on the page, the docs links resolve on this server.
    for (const name of ['TokenRequest', 'TokenResponse', 'Token', 'TokenChallenge', 'GenericBatchTokenRequest (head)']) {
      assert.ok((await page.locator(`figure.struct[data-struct^="${name}"]`).count()) > 0, `${name} shown`);
    }
    const href = await page.locator('a.ref[href^="/demo/docs/protocol#batched"]').first().getAttribute('href');
    const doc = await page.request.get(`${stack.url}${href}`);
    assert.equal(doc.status(), 200);
    assert.match(await doc.text(), /<h2 id="batched-issuance">/);
    await page.goto(`${stack.url}${href}`);
    await page.locator('h2#batched-issuance').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-4-docs.png') });

    assert.deepEqual(problems, []);
    assert.deepEqual(foreign, [], 'requests to other origins');
    assert.ok(requests.some((r) => r.startsWith('POST ') && r.endsWith('/token-request')), 'issuance went through the page');
    assert.ok(requests.some((r) => r.startsWith('POST ') && r.endsWith('/v1/chat/completions')), 'redemption went through the page');
  });

  it('the CSP keeps the page from reaching any other origin', async () => {
    const before = foreign.length;
    const blocked = await page.evaluate(async () => {
      try {
        await fetch('http://127.0.0.2:9/elsewhere');
        return false;
      } catch {
        return true;
      }
    });
    assert.equal(blocked, true);
    // Refused by the CSP before any request left the page: the route never saw it.
    assert.equal(foreign.length, before);
  });

  it('is off unless configured, and its free credits only exist on the embedded defaults with the stand-in upstream', async () => {
    const plain = await startLocalStack({ config: { logLevel: 'silent' } });
    try {
      assert.equal((await fetch(`${plain.url}/demo`)).status, 404);
      assert.equal((await fetch(`${plain.url}/demo/credits`, { method: 'POST' })).status, 404);
    } finally {
      await plain.stop();
    }
    const { demoCreditsAvailable } = await import('../../src/demoPage/demoRoutes.js');
    const config = stack.proxy.config;
    assert.equal(demoCreditsAvailable({ config }), true);
    assert.equal(demoCreditsAvailable({ config: { ...config, keys: { ...config.keys, dir: '/keys' } } }), false);
    assert.equal(demoCreditsAvailable({ config: { ...config, redis: { ...config.redis, issuance: { ...config.redis.issuance, url: 'redis://127.0.0.1:6379' } } } }), false);
    const withProviders = (providers: unknown) => demoCreditsAvailable({ config: { ...config, redemption: { ...config.redemption, providers } } });
    assert.equal(withProviders({ a: { kind: 'local-stand-in' } }), true);
    assert.equal(withProviders({ a: { kind: 'local-stand-in' }, real: { baseUrl: 'http://127.0.0.1:9/v1' } }), false);
    assert.equal(withProviders({ real: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9/v1' } }), false);
  });
});
