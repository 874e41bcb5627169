/**
 * Driving the LLM-Tor extension inside code-server (./codeServer.ts) from a test, shared by the
 * extension's own end-to-end test (vscode-extension/test/codeServer.e2e.test.ts) and the Helm
 * chart's (operator/test/helmNodeE2e.test.ts): Debian's Chromium through playwright-core, the
 * command palette, the chat webview, and the torrc lines that make the extension's own tor a
 * client of a private Tor network (./torNetwork.ts).
 *
 *   const { context, page } = await launchChromium(profileDir);
 *   await page.goto(code.workbenchUrl);
 *   await runPaletteCommand(page, 'LLM-Tor: Open Chat');
 *   await chatWebview(page).locator('#tor-state.ready').waitFor();
 */
import { readFileSync } from 'node:fs';
import { chromium, type BrowserContext, type FrameLocator, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Headless, no sandbox (root in CI), and nothing that reaches out (updates, sync, metrics). */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-first-run', '--no-default-browser-check', '--metrics-recording-only'];

/** A persistent Chromium profile in `profileDir` (a fresh directory the caller removes) and its first page. */
export async function launchChromium(profileDir: string, opts: { executablePath?: string; viewport?: { width: number; height: number } } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: opts.executablePath ?? CHROMIUM_PATH,
    headless: true,
    viewport: opts.viewport ?? { width: 1400, height: 900 },
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/** Runs a command from the palette (F1). An open palette does not refresh its list: open, type, wait briefly, retry. */
export async function runPaletteCommand(page: Page, title: string, attempts = 20): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(`>${title}`, { timeout: 3000 });
    } catch {
      // Closed again by a focus change (an editor opening): try once more.
      continue;
    }
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    if (await row.isVisible({ timeout: 1000 }).catch(() => false)) {
      // The palette can still close under a focus change (an editor opening): then retry.
      if (await row.click({ timeout: 3000 }).then(() => true, () => false)) return;
      continue;
    }
    await page.keyboard.press('Escape');
    await page.waitForTimeout(500);
  }
  throw new Error(`command "${title}" never appeared in the palette`);
}

/** The chat panel's content (a webview: an iframe in an iframe). */
export function chatWebview(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
}

/**
 * `llmtor.tor.extraTorrc` for a tor the extension runs itself as a client of a private network:
 * the network's client torrc (`network.dataDirs.client`/torrc) without the lines naming that
 * client's own data directory, ports, log and owner.
 */
export function privateNetworkTorrc(clientTorrcPath: string): string[] {
  return readFileSync(clientTorrcPath, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !/^(DataDirectory|SocksPort|ControlPort|CookieAuthentication|Log|__OwningControllerProcess|PidFile)\b/.test(l));
}
