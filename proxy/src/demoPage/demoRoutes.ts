/**
 * GET /demo — the interactive protocol demo (docs/demo.md): one self-contained
 * page whose script plays the client in the browser (blinds, unblinds, verifies
 * with WebCrypto, redeems) against this server's real endpoints. A strict CSP
 * with a fresh nonce per response: nothing loads from anywhere, the script talks
 * to this origin only.
 *
 * POST /demo/credits — free credits for the page's fresh account, only on the
 * embedded defaults (ephemeral keys, accounts in this process, the stand-in
 * upstream): there tokens are worthless outside this process and buy canned
 * text. Anywhere else it answers 404 and the page says so.
 *
 * GET /demo/docs/<page> — the docs pages the demo links to, as plain text with
 * anchored headings, so the links work without leaving this server.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import type { Context } from 'koa';
import { ApiError } from '../http/apiError.js';
import type { IssuanceContext } from '../issuanceContext.js';
import { hasServer } from '../redis/redisConfig.js';
import type { DemoAssets } from './bundle.js';

/** Enough for the page's walk: a batch of credit tokens, a redemption, a replay. */
export const DEMO_CREDITS = 12;

/**
 * Free credits only where they buy nothing real: ephemeral keys (tokens verify in this
 * process only), accounts in this process, and no upstream but the canned-text stand-in.
 */
export function demoCreditsAvailable(c: Pick<IssuanceContext, 'config'>): boolean {
  const providers = c.config.redemption.providers;
  const standInOnly =
    providers === undefined || (typeof providers === 'object' && providers !== null && Object.values(providers).every((p) => (p as { kind?: unknown } | null)?.kind === 'local-stand-in'));
  return !c.config.keys.dir && !hasServer(c.config.redis.issuance) && standInOnly;
}

function csp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

// The script text is inlined: '</script' inside it would end the element early.
const inlineSafe = (s: string) => s.replace(/<\/(script|style)/gi, '<\\/$1');

export function demoPage(assets: DemoAssets, nonce: string, o: { issuerRequestPath: string; credits: boolean }): string {
  const config = JSON.stringify({ issuerRequestPath: o.issuerRequestPath, demoCredits: o.credits ? DEMO_CREDITS : 0 });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>LLM-Tor — interactive protocol demo</title>
<style nonce="${nonce}">${inlineSafe(assets.style)}</style>
</head>
<body>
<main id="app" data-config="${config.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}">
<noscript>This demo runs the client side of the protocol in your browser: it needs JavaScript.</noscript>
</main>
<script nonce="${nonce}">${inlineSafe(assets.script)}</script>
</body>
</html>
`;
}

const DOCS_DIR = fileURLToPath(new URL('../../../../docs/', import.meta.url));
const DOC_PAGES = new Set(['protocol', 'privacy', 'demo']);

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
export function headingSlug(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-');
}

/** Markdown as text: headings become anchors, code blocks stay monospace; the rest is shown as written. */
export function docPage(markdown: string, nonce: string, style: string, name: string): string {
  const out: string[] = [];
  let block: string[] = [];
  let code = false;
  const flush = () => {
    const text = escapeHtml(block.join('\n'));
    // Outside code blocks: `code` and **bold**, on the escaped text (no markup can come through).
    const html = code ? text : text.replace(/`([^`\n]+)`/g, '<code>$1</code>').replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>');
    if (block.join('').trim()) out.push(`<pre${code ? ' class="code"' : ''}>${html}</pre>`);
    block = [];
  };
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      flush();
      code = !code;
      continue;
    }
    const m = !code && /^(#{1,4}) (.*)$/.exec(line);
    if (m) {
      flush();
      const text = m[2]!.replace(/`/g, '');
      out.push(`<h${m[1]!.length} id="${escapeHtml(headingSlug(text))}">${escapeHtml(text)}</h${m[1]!.length}>`);
    } else if (!code && !line.trim()) flush();
    else block.push(line);
  }
  flush();
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLM-Tor docs: ${escapeHtml(name)}</title><style nonce="${nonce}">${inlineSafe(style)}</style></head>
<body><main><p><a class="ref" href="/demo">← back to the demo</a> docs/${escapeHtml(name)}.md</p><article class="doc">${out.join('\n')}</article></main></body></html>
`;
}

function secureHeaders(ctx: Context, nonce: string): void {
  ctx.set('Content-Security-Policy', csp(nonce));
  ctx.set('Cache-Control', 'no-store');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.type = 'text/html; charset=utf-8';
}

export function demoRoutes(c: IssuanceContext, assets: DemoAssets): Router {
  const router = new Router();
  const send = (ctx: Context) => {
    const nonce = randomBytes(18).toString('base64');
    secureHeaders(ctx, nonce);
    ctx.body = demoPage(assets, nonce, { issuerRequestPath: c.config.issuerRequestPath, credits: demoCreditsAvailable(c) });
  };
  router.get('/demo', send);
  router.get('/demo/', send);

  router.get('/demo/docs/:page', async (ctx) => {
    const page = ctx.params.page ?? '';
    const text = DOC_PAGES.has(page) ? await readFile(`${DOCS_DIR}${page}.md`, 'utf8').catch(() => undefined) : undefined;
    if (text === undefined) throw new ApiError('not_found', 'no such docs page here');
    const nonce = randomBytes(18).toString('base64');
    secureHeaders(ctx, nonce);
    ctx.body = docPage(text, nonce, assets.style, page);
  });

  router.post('/demo/credits', async (ctx) => {
    if (!demoCreditsAvailable(c)) throw new ApiError('not_found', 'demo credits exist only on the embedded defaults (ephemeral keys, no Redis, the stand-in upstream)');
    const accountId = await c.auth.authenticate(ctx);
    const { balance } = await c.store.snapshot(accountId);
    // Top up to DEMO_CREDITS, never beyond: reloading the page does not mint more.
    const credits = Math.max(0, DEMO_CREDITS - balance);
    const after = credits > 0 ? (await c.store.grant(accountId, credits, `demo_${randomUUID()}`, 'demo page credits', c.now())).balance : balance;
    ctx.status = 200;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { credits, balance: after };
  });
  return router;
}
