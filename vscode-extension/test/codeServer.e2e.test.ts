/**
 * End to end in a real VS Code: code-server 4.100.3 with the packaged .vsix installed into a
 * fresh extensions directory, driven by playwright-core with Debian's Chromium. The
 * extension talks to the real proxy (in-process local stack) through the real private Tor
 * network, redeeming via the onion address: open the panel, create an account, get credits
 * (the local stack's admin grant), get tokens, send a prompt, watch the answer stream in;
 * attach workspace files with `#`, edit a selection through a diff, search the history.
 * Screenshots are saved under test-artifacts/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { codeServerBinary, startCodeServer, type CodeServer } from '@llmtor/devtools/codeServer';
import { chatWebview, launchChromium, privateNetworkTorrc, runPaletteCommand } from '@llmtor/devtools/codeServerUi';
import { startTorNetwork, type PeerOwner, type TorNetwork } from '@llmtor/devtools/torNetwork';
import type * as ProxyTesting from '@llmtor/proxy/testing';
import type { LocalStack, LocalStandInUpstream as StandIn } from '@llmtor/proxy/testing';
import type { BrowserContext, FrameLocator, Page } from 'playwright-core';

/* eslint-disable @typescript-eslint/no-require-imports -- the proxy package is ESM; this file is CommonJS like the extension */
const { startLocalStack, LocalStandInUpstream } = require('@llmtor/proxy/testing') as typeof ProxyTesting;
/* eslint-enable @typescript-eslint/no-require-imports */

// Browser globals inside page.evaluate callbacks (the tests compile without the DOM lib).
declare const getComputedStyle: (e: unknown) => { color: string; backgroundColor: string; borderTopColor: string; borderTopWidth: string; borderTopStyle: string };
declare const document: { body: unknown };

/** In the browser: an element's text colour and the first opaque background behind it. */
const COLOURS = new Function(
  'e',
  `let n = e; let bg = 'rgb(255, 255, 255)';
   while (n) { const b = getComputedStyle(n).backgroundColor; if (b !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(b)) { bg = b; break; } n = n.parentElement; }
   return { color: getComputedStyle(e).color, bg };`,
) as (e: unknown) => { color: string; bg: string };

/** WCAG contrast ratio of two rgb()/rgba() colours (alpha ignored). */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/[\d.]+/g) ?? ['0', '0', '0']).slice(0, 3).map((v) => {
      const x = Number(v) / 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

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
  let torDataDir: string;
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
    torDataDir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-e2e-tor-'));
    code = await startCodeServer({
      binary,
      vsix: [VSIX],
      settings: {
        'llmtor.issuerUrl': stack.url,
        'llmtor.redemptionUrl': `http://${tor.onionAddress}`,
        // A tor the extension runs itself, as a client of the private network (one per machine:
        // the second window of the last test joins it).
        'llmtor.tor.source': 'binary',
        'llmtor.tor.path': 'tor',
        'llmtor.tor.dataDir': torDataDir,
        'llmtor.tor.extraTorrc': privateNetworkTorrc(path.join(tor.dataDirs.client, 'torrc')),
        // Enough tokens for every chat below (the #file message costs 2: its file is 40 kB).
        'llmtor.wallet.batchSize': 6,
        // The directory is fetched on "Get tokens", the tokens 1–2 s later (900 s by default).
        'llmtor.wallet.directoryGapSeconds': 1,
        'llmtor.wallet.minAgeSeconds': 0,
        'llmtor.wallet.jitterSeconds': 0,
      },
    });
    profileDir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-chromium-'));
    ({ context, page } = await launchChromium(profileDir, { executablePath: CHROMIUM }));
    // Script errors in the webview fail loudly instead of as a timeout elsewhere.
    page.on('console', (m) => {
      if (m.type() === 'error' && /webview|llmtor/i.test(m.text() + (m.location().url ?? ''))) console.error(`[browser] ${m.text()} @ ${m.location().url}`);
    });
    page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    if (torDataDir) rmSync(torDataDir, { recursive: true, force: true });
    await code?.stop();
    await tor?.stop();
    await stack?.stop();
    await upstream?.close();
  });

  function runCommand(title: string): Promise<void> {
    return runPaletteCommand(page, title);
  }

  function webview(): FrameLocator {
    return chatWebview(page);
  }

  /** The webview's count of state updates (main.ts sets it on each one). */
  async function updates(): Promise<number> {
    return Number((await webview().locator('#app').getAttribute('data-updates')) ?? '0');
  }

  /** Runs a command that publishes state and waits until the webview received the update. */
  async function forceStateUpdate(): Promise<void> {
    const before = await updates();
    await runCommand('LLM-Tor: Refresh Balance');
    const deadline = Date.now() + 30_000;
    while ((await updates()) <= before) {
      assert.ok(Date.now() < deadline, 'no state update reached the webview');
      await page.waitForTimeout(100);
    }
  }

  it('chat-first panel: creates an account, gets tokens and chats with a streamed, highlighted answer over Tor; typed text survives state updates', async () => {
    await page.goto(code.workbenchUrl);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await runCommand('LLM-Tor: Open Chat');
    const ui = webview();
    await ui.locator('#status').waitFor({ timeout: 60_000 });
    await ui.locator('#tor-state.ready').waitFor({ timeout: 60_000 });

    // Chat-first: the composer and the conversation; account, purchase and sign-out are not in the panel.
    await ui.locator('#prompt').waitFor();
    for (const gone of ['#sign-out', '#buy', '#pack', '#refresh', '#signin-key']) assert.equal(await ui.locator(gone).count(), 0, `${gone} is in the chat panel`);
    await ui.locator('#account-btn').waitFor();
    // The view title carries the actions, with icons.
    await page.locator('.title-actions a[aria-label^="New Chat"], .pane-header .actions a[aria-label^="New Chat"]').first().waitFor({ state: 'attached', timeout: 10_000 });

    // A draft typed before the account exists survives every update on the way (busy, key, balance, tokens).
    const draft = 'A draft that must survive state updates';
    await ui.locator('#prompt').fill(draft);
    await ui.locator('#create-account').click();
    const key = (await ui.locator('#account-key').textContent({ timeout: 30_000 }))?.trim() ?? '';
    assert.match(key, /^[\d ]{40,}$/);
    assert.equal(await ui.locator('#prompt').inputValue(), draft);
    // Credits: the local stack's admin grant (stands in for a Stripe purchase).
    const grant = await fetch(`${stack.url}/v1/admin/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ account_key: key, credits: 10 }),
    });
    assert.equal(grant.status, 201);
    await ui.locator('#dismiss-key').click();
    await runCommand('LLM-Tor: Get Tokens Now');
    await ui.locator('#wallet', { hasText: '6 tokens (6 ready)' }).waitFor({ timeout: 90_000 });
    await ui.locator('#balance', { hasText: '4 credits' }).waitFor({ timeout: 30_000 });
    await ui.locator('#model option', { hasText: 'test-model' }).waitFor({ state: 'attached', timeout: 30_000 });
    assert.equal(await ui.locator('#prompt').inputValue(), draft, 'the draft survived account creation and the refill');
    // Cost preview for the message in the composer.
    await ui.locator('#cost', { hasText: '1 credit' }).waitFor({ timeout: 10_000 });

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
      if (Date.now() > deadline) {
        const dump = await ui.locator('#messages').evaluate((e: { innerHTML: string }) => e.innerHTML);
        assert.fail(`no complete answer; last text: ${JSON.stringify(text)}; messages: ${dump.slice(0, 3000)}`);
      }
      await page.waitForTimeout(40);
    }
    assert.ok(seen.size >= 3, `the answer appeared in pieces (saw ${seen.size} distinct states)`);
    await ui.locator('.msg.assistant strong', { hasText: 'LLM-Tor' }).waitFor();
    await ui.locator('.msg.assistant pre code', { hasText: 'console.log("private");' }).waitFor();
    // Highlighted from the theme's colours, and the inline-code background does not leak into the block.
    await ui.locator('.msg.assistant pre code .tok-string', { hasText: '"private"' }).waitFor();
    const codeBg = await ui.locator('.msg.assistant pre code').first().evaluate((e) => getComputedStyle(e).backgroundColor);
    assert.equal(codeBg, 'rgba(0, 0, 0, 0)', 'pre > code has no background of its own');
    const strColor = await ui.locator('.msg.assistant .tok-string').first().evaluate((e) => getComputedStyle(e).color);
    const plainColor = await ui.locator('.msg.assistant pre code').first().evaluate((e) => getComputedStyle(e).color);
    assert.notEqual(strColor, plainColor, 'strings are coloured');
    for (const b of ['.copy-code', '.insert-code', '.apply-code']) await ui.locator(`.msg.assistant ${b}`).first().waitFor();
    await ui.locator('.msg.assistant .meta', { hasText: 'test-model · 1 credit' }).waitFor();
    await ui.locator('#wallet', { hasText: '5 tokens' }).waitFor({ timeout: 10_000 });

    // The proxy's peers for the chat were the onion service's tor, never this machine's client.
    const chatPeers = peers.slice(peersBefore);
    assert.ok(chatPeers.length > 0);
    for (const p of chatPeers) assert.equal(p?.role, 'onionService', JSON.stringify(p));
    // The upstream got the prompt (allowlisted fields only) and nothing naming the user.
    const last = upstream.received.at(-1)!;
    assert.match(last.rawBody, /Say hello privately\./);
    assert.doesNotMatch(last.rawBody, /"user"\s*:/);

    // Every input keeps its text across a state update: the composer and an open edit box.
    await ui.locator('#prompt').fill('second draft');
    await ui.locator('.msg.user button', { hasText: 'Edit' }).first().click();
    await ui.locator('.edit-box').fill('an edit in progress');
    await forceStateUpdate();
    assert.equal(await ui.locator('#prompt').inputValue(), 'second draft');
    assert.equal(await ui.locator('.edit-box').inputValue(), 'an edit in progress', 'the open edit box survived the update');
    await ui.locator('.msg.user button', { hasText: 'Cancel' }).click();
    await ui.locator('#prompt').fill('');

    // Status bar shows Tor and the wallet.
    await page.locator('.statusbar-item', { hasText: /Tor · .*5\/5/ }).first().waitFor({ timeout: 10_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-chat.png') });
  });

  /** Waits until the last answer in the chat has finished streaming and shows the canned text. */
  async function answerComplete(ui: FrameLocator, answersBefore: number): Promise<void> {
    const answer = ui.locator('.msg.assistant').nth(answersBefore);
    await answer.locator('.content', { hasText: 'That was a code block.' }).waitFor({ timeout: 90_000 });
    await ui.locator('.msg.assistant.streaming').waitFor({ state: 'detached', timeout: 30_000 });
    assert.equal(await answer.locator('.msg-error').count(), 0);
  }

  /**
   * Opens a workspace file in an editor (Quick Open). A file written a moment ago can be missing
   * from Quick Open's list until the file watcher reports it: close, wait and ask again.
   */
  async function openFile(name: string, firstLine: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await page.keyboard.press('Control+P');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(name);
      const row = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
      if (await row.click({ timeout: 5000 }).then(() => true, () => false)) break;
      assert.ok(attempt < 5, `${name} never appeared in Quick Open`);
      await page.keyboard.press('Escape');
      await page.waitForTimeout(1000);
    }
    await page.locator('.editor-instance .view-lines', { hasText: firstLine }).first().waitFor({ timeout: 15_000 });
  }

  it('#file: typing # lists workspace files; picked files show as removable chips, count in the cost, and go only inside that message', async () => {
    const ui = webview();
    mkdirSync(path.join(code.folder, 'notes'), { recursive: true });
    // 40 kB: the message costs 2 credits with it, 1 without (30 kB per credit).
    const marker = 'ATTACHED-CONTENT-42';
    writeFileSync(path.join(code.folder, 'notes', 'attach-me.txt'), `${marker}\n${'context line\n'.repeat(3200)}`);
    writeFileSync(path.join(code.folder, 'notes', 'other.txt'), 'another file\n');
    writeFileSync(path.join(code.folder, 'big.log'), 'x'.repeat(300_000));
    const prompt = ui.locator('#prompt');

    // Too big: a plain message, nothing attached.
    await prompt.fill('#big.lo');
    await ui.locator('#file-suggest .suggest-item[data-path="big.log"]').waitFor({ timeout: 30_000 });
    await prompt.press('Enter');
    await ui.locator('#error', { hasText: 'big.log is 300 kB; a file can be attached up to 200 kB' }).waitFor({ timeout: 10_000 });
    assert.equal(await ui.locator('#attachments .chip').count(), 0);
    await ui.locator('#dismiss-error').click();

    // Attach two, remove one.
    await prompt.fill('Summarize #attach');
    await ui.locator('#file-suggest .suggest-item[data-path="notes/attach-me.txt"]').waitFor({ timeout: 10_000 });
    await prompt.press('Enter');
    await ui.locator('#attachments .chip[data-path="notes/attach-me.txt"]').waitFor({ timeout: 10_000 });
    assert.equal(await prompt.inputValue(), 'Summarize ', 'the #query was replaced by the chip');
    await prompt.press('End');
    await prompt.pressSequentially('#other');
    await ui.locator('#file-suggest .suggest-item[data-path="notes/other.txt"]').click({ timeout: 10_000 });
    await ui.locator('#attachments .chip[data-path="notes/other.txt"]').waitFor({ timeout: 10_000 });
    await ui.locator('#cost', { hasText: '2 credits' }).waitFor({ timeout: 10_000 });
    assert.match((await ui.locator('#cost').getAttribute('title')) ?? '', /attached files included/);
    await ui.locator('#attachments .chip[data-path="notes/other.txt"] button').click();
    await ui.locator('#attachments .chip[data-path="notes/other.txt"]').waitFor({ state: 'detached', timeout: 10_000 });
    await prompt.pressSequentially('this file.');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-file-context.png') });

    const answersBefore = await ui.locator('.msg.assistant').count();
    const received = upstream.received.length;
    await prompt.press('Enter');
    await answerComplete(ui, answersBefore);
    await ui.locator('#attachments .chip').first().waitFor({ state: 'detached', timeout: 10_000 });
    await ui.locator('.msg.user .msg-files .chip', { hasText: 'notes/attach-me.txt' }).waitFor();
    await ui.locator('.msg.assistant .meta', { hasText: 'test-model · 2 credits' }).waitFor({ timeout: 10_000 });
    const sent = upstream.received.slice(received);
    assert.equal(sent.length, 1);
    const body = JSON.parse(sent[0]!.rawBody) as { messages: { content: string }[] };
    const last = body.messages.at(-1)!.content;
    assert.match(last, /^<attached-files count="1">\nFile: notes\/attach-me\.txt\n```txt\nATTACHED-CONTENT-42\n/);
    assert.match(last, /<\/attached-files>\n\nSummarize this file\.$/);
    assert.doesNotMatch(sent[0]!.rawBody, /another file|xxxxxxxxxx/, 'a removed or refused file is not sent');
    assert.equal(body.messages.slice(0, -1).some((m) => m.content.includes(marker)), false, 'only that message carries the file');
  });

  it('Edit Selection…: the instruction and the selected code go over Tor; the answer opens as a diff; Reject leaves the file untouched', async () => {
    const original = 'function greet() {\n  return 1;\n}\n';
    writeFileSync(path.join(code.folder, 'edit-me.js'), original);
    await openFile('edit-me.js', 'function greet() {');
    await page.locator('.editor-instance .view-lines').first().click();
    await page.keyboard.press('Control+A');
    const received = upstream.received.length;
    await runCommand('LLM-Tor: Edit Selection…');
    const input = page.locator('.quick-input-widget input');
    await page.locator('.quick-input-widget', { hasText: 'LLM-Tor: edit the selection' }).waitFor({ timeout: 10_000 });
    await input.fill('log something private');
    await input.press('Enter');
    await page.locator('.tab', { hasText: 'LLM-Tor edit' }).first().waitFor({ timeout: 120_000 });
    await page.locator('.monaco-diff-editor .view-lines', { hasText: 'console.log("private");' }).first().waitFor({ timeout: 15_000 });
    const sent = upstream.received.slice(received);
    assert.equal(sent.length, 1);
    const content = (JSON.parse(sent[0]!.rawBody) as { messages: { content: string }[] }).messages;
    assert.equal(content.length, 1, 'only the edit request, not the chat');
    assert.match(content[0]!.content, /Instruction: log something private\n\n```javascript\nfunction greet\(\) \{\n {2}return 1;\n\}\n```$/);
    assert.match(content[0]!.content, /Edit the whole file edit-me\.js|Edit this part of edit-me\.js/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-inline-edit.png') });
    await page.locator('.editor-actions a[aria-label^="Reject Suggested Change"]').first().click({ timeout: 10_000 });
    await page.locator('.tab', { hasText: 'LLM-Tor edit' }).first().waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(readFileSync(path.join(code.folder, 'edit-me.js'), 'utf8'), original, 'rejected: the file is unchanged');
    await page.locator('.tab.active', { hasText: 'edit-me.js' }).first().waitFor({ timeout: 10_000 });
  });

  it('Search Chat History…: finds a past chat by its text and reopens it (local only)', async () => {
    const ui = webview();
    await ui.locator('#new-chat').click();
    await ui.locator('.msg').first().waitFor({ state: 'detached', timeout: 10_000 });
    const received = upstream.received.length;
    await runCommand('LLM-Tor: Search Chat History…');
    const input = page.locator('.quick-input-widget input');
    await page.locator('.quick-input-widget', { hasText: 'search chat history' }).waitFor({ timeout: 10_000 });
    await input.fill('PRIVATELY hello');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Say hello privately.' }).first();
    await row.waitFor({ timeout: 10_000 });
    await input.fill('privately nowhere-in-any-chat');
    await page.locator('.quick-input-widget', { hasText: 'no chat contains' }).waitFor({ timeout: 10_000 });
    await input.fill('privately');
    await row.waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-history-search.png') });
    await row.click({ timeout: 10_000 });
    await ui.locator('.msg.user', { hasText: 'Say hello privately.' }).waitFor({ timeout: 10_000 });
    await ui.locator('.msg.user .msg-files .chip', { hasText: 'notes/attach-me.txt' }).waitFor();
    assert.equal(upstream.received.length, received, 'searching sends nothing');
    // Reopening ends with the focus in the chat input; the next test's Quick Open must not open before (it would close).
    await ui.locator('#prompt:focus').waitFor({ timeout: 10_000 });
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  });

  it('Apply… shows an answer\'s code as a diff against the active editor; Accept writes it', async () => {
    writeFileSync(path.join(code.folder, 'sample.js'), 'const before = 1;\n');
    await openFile('sample.js', 'const before = 1;');
    await webview().locator('.msg.assistant .apply-code').first().click();
    await page.locator('.monaco-diff-editor').first().waitFor({ timeout: 15_000 });
    await page.locator('.tab', { hasText: 'LLM-Tor suggestion' }).first().waitFor({ timeout: 10_000 });
    await page.locator('.editor-actions a[aria-label^="Accept Suggested Change"]').first().click({ timeout: 10_000 });
    await page.locator('.editor-instance .view-lines', { hasText: 'console.log("private");' }).first().waitFor({ timeout: 15_000 });
    await page.locator('.tab', { hasText: 'LLM-Tor suggestion' }).first().waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('is readable in the dark, light and both high-contrast themes (screenshots, buttons keep a visible border or background)', async () => {
    const ui = webview();
    const themes = [
      { name: 'Default Dark Modern', cls: 'vs-dark', file: 'dark', hc: false },
      { name: 'Default Light Modern', cls: 'vs', file: 'light', hc: false },
      { name: 'Default High Contrast', cls: 'hc-black', file: 'hc-dark', hc: true },
      { name: 'Default High Contrast Light', cls: 'hc-light', file: 'hc-light', hc: true },
    ];
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const t of themes) {
      // The picker can close under a focus change (an editor still opening): retry a few times.
      for (let attempt = 0; ; attempt++) {
        try {
          await runCommand('Preferences: Color Theme');
          await page.locator('.quick-input-widget input').fill(t.name, { timeout: 3000 });
          // Rows are labelled "<label>, <setting id>", e.g. "Dark Modern, Default Dark Modern".
          await page.locator(`.quick-input-list .monaco-list-row[aria-label$=", ${t.name}"], .quick-input-list .monaco-list-row[aria-label*=", ${t.name},"]`).first().click({ timeout: 5000 });
          break;
        } catch (e) {
          if (attempt >= 4) throw e;
          await page.keyboard.press('Escape');
          await page.waitForTimeout(500);
        }
      }
      const deadline = Date.now() + 30_000;
      for (;;) {
        const cls = (await page.locator('.monaco-workbench').first().getAttribute('class')) ?? '';
        if (cls.split(/\s+/).includes(t.cls)) break;
        assert.ok(Date.now() < deadline, `theme ${t.name} not applied: ${cls}`);
        await page.waitForTimeout(200);
      }
      // The webview gets the theme's variables a moment after the workbench.
      await page.waitForTimeout(1500);
      for (const id of ['#send', '#account-btn', '#new-chat', '.msg.assistant .copy-code']) {
        const st = await ui.locator(id).first().evaluate((e) => {
          const c = getComputedStyle(e);
          return { color: c.color, bg: c.backgroundColor, border: c.borderTopColor, width: c.borderTopWidth, style: c.borderTopStyle, bodyBg: getComputedStyle(document.body).backgroundColor };
        });
        const transparent = (c: string) => c === 'rgba(0, 0, 0, 0)' || c === 'transparent';
        assert.ok(!transparent(st.bg) || !transparent(st.border), `${t.file} ${id}: neither background nor border (${JSON.stringify(st)})`);
        assert.notEqual(st.color, st.bg, `${t.file} ${id}: text colour equals background`);
        if (t.hc) {
          assert.equal(st.style, 'solid', `${t.file} ${id}: ${JSON.stringify(st)}`);
          assert.ok(!transparent(st.border) && st.width !== '0px', `${t.file} ${id}: high contrast needs a border (${JSON.stringify(st)})`);
        }
      }
      // Code in an answer is readable: plain and string tokens against the block's background.
      for (const sel of ['.msg.assistant pre code', '.msg.assistant pre code .tok-string', '.msg.assistant p']) {
        const { color, bg } = await ui.locator(sel).first().evaluate(COLOURS);
        const ratio = contrast(color, bg);
        assert.ok(ratio >= 3, `${t.file} ${sel}: contrast ${ratio.toFixed(2)} (${color} on ${bg})`);
      }
      await page.screenshot({ path: path.join(ARTIFACTS, `vscode-extension-${t.file}.png`) });
    }
  });

  it('two windows share one tor that the extension runs (the second used to show "Tor failed")', async () => {
    const first = webview();
    await first.locator('#tor-state.ready', { hasText: 'started by LLM-Tor' }).waitFor({ timeout: 10_000 });

    // A second window (its own extension host).
    const page2 = await context.newPage();
    try {
      await page2.goto(code.workbenchUrl);
      await page2.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      const saved = page;
      page = page2;
      try {
        await runCommand('LLM-Tor: Open Chat');
        const second = webview();
        await second.locator('#tor-state.ready', { hasText: 'shared with another VS Code window' }).waitFor({ timeout: 60_000 });
        // It chats through the shared tor (the wallet is shared too: same SecretStorage).
        // The history is shared too: the new answer is the one after those already there.
        await second.locator('.msg.assistant').first().waitFor({ timeout: 30_000 });
        const answersBefore = await second.locator('.msg.assistant').count();
        await second.locator('#prompt').fill('From the second window.');
        await second.locator('#prompt').press('Enter');
        const answer = second.locator('.msg.assistant').nth(answersBefore);
        await answer.locator('.content', { hasText: 'That was a code block.' }).waitFor({ timeout: 90_000 });
        await second.locator('.msg.assistant.streaming').waitFor({ state: 'detached', timeout: 30_000 });
        assert.equal(await answer.locator('.msg-error').count(), 0);
        assert.match(upstream.received.at(-1)!.rawBody, /From the second window\./);
        await page2.screenshot({ path: path.join(ARTIFACTS, 'vscode-extension-second-window.png') });
      } finally {
        page = saved;
      }
      // Still one tor on that data directory.
      const shared = JSON.parse(readFileSync(path.join(torDataDir, 'llmtor-shared-tor.json'), 'utf8')) as { torPid: number };
      assert.ok(shared.torPid > 0);
    } finally {
      await page2.close();
    }
  });
});
