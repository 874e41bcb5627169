/**
 * End to end in a real VS Code: code-server 4.100.3 with the packaged .vsix installed into a
 * fresh extensions directory, driven by playwright-core with Debian's Chromium. The
 * extension talks to the real proxy (in-process local stack) through the real private Tor
 * network, redeeming via the onion address: open the panel, create an account, get credits
 * (the local stack's admin grant), get tokens, send a prompt, watch the answer stream in.
 * A screenshot is saved under test-artifacts/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { codeServerBinary, startCodeServer, type CodeServer } from '@llmtor/devtools/codeServer';
import { startTorNetwork, type PeerOwner, type TorNetwork } from '@llmtor/devtools/torNetwork';
import type * as ProxyTesting from '@llmtor/proxy/testing';
import type { LocalStack, LocalStandInUpstream as StandIn } from '@llmtor/proxy/testing';
import { chromium, type BrowserContext, type FrameLocator, type Page } from 'playwright-core';

/* eslint-disable @typescript-eslint/no-require-imports -- the proxy package is ESM; this file is CommonJS like the extension */
const { startLocalStack, LocalStandInUpstream } = require('@llmtor/proxy/testing') as typeof ProxyTesting;
/* eslint-enable @typescript-eslint/no-require-imports */

const ROOT = path.resolve(__dirname, '../../..');
const VSIX = path.resolve(__dirname, '../../out/llmtor.vsix');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ANSWER = 'Hello from the **LLM-Tor** test upstream, streamed over Tor.\n\n```js\nconsole.log("private");\n```\n\nThat was a code block.';

describe('VS Code (code-server) end to end over Tor', function () {
  this.timeout(300_000);
  let upstream: StandIn;
  let stack: LocalStack;
  let tor: TorNetwork;
  let code: CodeServer;
  let context: BrowserContext;
  let page: Page;
  let profileDir: string;
  const peers: (PeerOwner | undefined)[] = [];

  before(async function () {
    assert.ok(existsSync(VSIX), `${VSIX} missing: run npm run build -w vscode-extension`);
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
    const binary = codeServerBinary({ install: true });
    // An upstream that streams slowly enough to see the answer grow in the webview.
    upstream = new LocalStandInUpstream({ chunkDelayMs: 120, chunks: 14, text: ANSWER });
    const { baseUrl } = await upstream.listen();
    stack = await startLocalStack({
      config: {
        redemption: {
          models: [{ id: 'test-model', provider: 'test', priceCredits: 1 }],
          providers: { test: { kind: 'openai-compatible', baseUrl } },
        },
      },
    });
    stack.proxy.server.server.on('connection', (s: Socket) => peers.push(tor?.ownerOfPeerPort(s.remotePort ?? 0, stack.proxy.port)));
    tor = await startTorNetwork({ onionTargetPort: stack.proxy.port });
    code = await startCodeServer({
      binary,
      vsix: [VSIX],
      settings: {
        'llmtor.issuerUrl': stack.url,
        'llmtor.redemptionUrl': `http://${tor.onionAddress}`,
        'llmtor.tor.source': 'socks',
        'llmtor.tor.socksHost': '127.0.0.1',
        'llmtor.tor.socksPort': tor.socksPort,
        'llmtor.wallet.batchSize': 3,
        // The directory is fetched on "Get tokens", the tokens 1–2 s later (900 s by default).
        'llmtor.wallet.directoryGapSeconds': 1,
        'llmtor.wallet.minAgeSeconds': 0,
        'llmtor.wallet.jitterSeconds': 0,
      },
    });
    profileDir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-first-run', '--no-default-browser-check', '--metrics-recording-only'],
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await code?.stop();
    await tor?.stop();
    await stack?.stop();
    await upstream?.close();
  });

  async function runCommand(title: string): Promise<void> {
    // An open palette does not refresh its list: open, type, wait briefly, retry.
    for (let attempt = 0; attempt < 20; attempt++) {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(`>${title}`);
      const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
      if (await row.isVisible({ timeout: 1000 }).catch(() => false)) {
        await row.click();
        return;
      }
      await page.keyboard.press('Escape');
      await page.waitForTimeout(500);
    }
    throw new Error(`command "${title}" never appeared in the palette`);
  }

  function webview(): FrameLocator {
    return page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  }

  it('creates an account, gets tokens and chats with a streamed answer from the real proxy over Tor', async () => {
    await page.goto(code.workbenchUrl);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await runCommand('LLM-Tor: Open Chat');
    const ui = webview();
    await ui.locator('#status').waitFor({ timeout: 60_000 });
    await ui.locator('#tor-state.ready').waitFor({ timeout: 60_000 });

    // Account: the key is shown once in the panel.
    await ui.locator('#create-account').click();
    const key = (await ui.locator('#account-key').textContent({ timeout: 30_000 }))?.trim() ?? '';
    assert.match(key, /^[\d ]{40,}$/);
    // Credits: the local stack's admin grant (stands in for a Stripe purchase).
    const grant = await fetch(`${stack.url}/v1/admin/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ account_key: key, credits: 10 }),
    });
    assert.equal(grant.status, 201);
    await ui.locator('#dismiss-key').click();
    await ui.locator('#get-tokens').click();
    await ui.locator('#wallet', { hasText: 'Wallet: 3 tokens (3 ready)' }).waitFor({ timeout: 90_000 });
    await ui.locator('#balance', { hasText: 'Balance: 7 credits' }).waitFor({ timeout: 30_000 });
    await ui.locator('#model option', { hasText: 'test-model — 1 credit' }).waitFor({ state: 'attached', timeout: 30_000 });

    // Chat: type, send, watch the answer grow.
    const peersBefore = peers.length;
    await ui.locator('#prompt').fill('Say hello privately.');
    await ui.locator('#prompt').press('Enter');
    const answer = ui.locator('.msg.assistant .content').last();
    const seen = new Set<string>();
    const deadline = Date.now() + 90_000;
    for (;;) {
      const text = (await answer.textContent().catch(() => '')) ?? '';
      if (text && !text.startsWith('Waiting for the answer')) seen.add(text);
      const streaming = await ui.locator('.msg.assistant.streaming').count();
      if (streaming === 0 && text.includes('That was a code block.')) break;
      assert.ok(Date.now() < deadline, `no complete answer; last text: ${JSON.stringify(text)}`);
      await page.waitForTimeout(40);
    }
    assert.ok(seen.size >= 3, `the answer appeared in pieces (saw ${seen.size} distinct states)`);
    await ui.locator('.msg.assistant strong', { hasText: 'LLM-Tor' }).waitFor();
    await ui.locator('.msg.assistant pre code', { hasText: 'console.log("private");' }).waitFor();
    await ui.locator('.msg.assistant .copy-code').first().waitFor();
    await ui.locator('.msg.assistant .meta', { hasText: 'test-model · 1 credit' }).waitFor();
    await ui.locator('#wallet', { hasText: 'Wallet: 2 tokens' }).waitFor({ timeout: 10_000 });

    // The proxy's peers for the chat were the onion service's tor, never this machine's client.
    const chatPeers = peers.slice(peersBefore);
    assert.ok(chatPeers.length > 0);
    for (const p of chatPeers) assert.equal(p?.role, 'onionService', JSON.stringify(p));
    // The upstream got the prompt (allowlisted fields only) and nothing naming the user.
    const last = upstream.received.at(-1)!;
    assert.match(last.rawBody, /Say hello privately\./);
    assert.doesNotMatch(last.rawBody, /"user"\s*:/);

    // Status bar shows Tor and the wallet.
    await page.locator('.statusbar-item', { hasText: /Tor · .*2\/2/ }).first().waitFor({ timeout: 10_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-chat.png') });
  });
});
