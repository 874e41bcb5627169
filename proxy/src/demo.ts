/**
 * `make demo`: the local stack in this process (in-process store, ephemeral
 * keys, the LOCAL STAND-IN upstream that answers with canned text), walked through:
 *   1. create an account (its key is shown once),
 *   2. buy credits: with stripe-mock installed, a real Stripe Checkout Session
 *      against the stand-in and a webhook signed with the real library; else
 *      an admin grant,
 *   3. fetch the issuer directory; one token blind → sign → finalize → verify,
 *      step by step; then a batch of blind-signed tokens and the abuse tokens,
 *   4. verify the finalized tokens against the directory's keys,
 *   5. redeem anonymously (streamed), 6. replay the token on another request
 *      (rejected), 7. retry the same request (the cached answer, no second charge).
 * Then it serves the interactive page (/demo, docs/demo.md) on the same stack
 * until Ctrl-C; `--no-serve` (or LLMTOR_DEMO_EXIT=1) stops after the walk.
 * LLMTOR_DEMO_PORT picks the port (default: a free one).
 *
 * The walk is for a person: the stack's warnings about its embedded defaults
 * are printed as plain lines, not as the JSON log records servers write.
 */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import {
  bytesEqual,
  challengeDigest,
  decodeBatchTokenResponse,
  decodeToken,
  defaultChallenge,
  encodeTokenRequest,
  formatAuthorization,
  fromBase64Url,
  publicKeyFromPssSpki,
  toBase64Url,
  toHex,
  tokenKeyId,
  verifyToken,
} from '@llmtor/protocol';
import { adminGrant, clientFor, createAccount, fetchDirectory, getAccount, issueTokens, postBatch } from './dev/issuanceClient.js';
import { startStripeMock, type StripeMock } from './dev/stripeMock.js';
import { startLocalStack } from './localStack.js';
import { createLogger } from './logger.js';

const log = (s: string) => process.stdout.write(`${s}\n`);

/** Wraps at ~100 columns with a hanging indent, so a long warning stays readable. */
function wrap(text: string, indent: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width - indent.length) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : `${indent}${l}`)).join('\n');
}

/**
 * A logger whose records become one readable line each ("note: …"). Until
 * `flush()` they are held, so the start-up notes come as one block after the
 * stack's address instead of in the middle of the steps.
 */
function proseLogger() {
  const held: string[] = [];
  let holding = true;
  const print = (line: string) => (holding ? held.push(line) : log(line));
  const logger = createLogger({
    level: 'warn',
    destination: {
      write(record: string) {
        let r: { level?: number; msg?: string; role?: string };
        try {
          r = JSON.parse(record) as typeof r;
        } catch {
          return print(`   ${record.trim()}`);
        }
        const kind = (r.level ?? 40) >= 50 ? 'error' : 'note';
        print(`   ${kind}: ${wrap(r.msg ?? '', '         ')}`);
      },
    },
  });
  return {
    logger,
    flush() {
      holding = false;
      for (const l of held.splice(0)) log(l);
    },
  };
}

const serveAfterWalk = !process.argv.includes('--no-serve') && process.env.LLMTOR_DEMO_EXIT !== '1';

async function main(): Promise<void> {
  let mock: StripeMock | undefined;
  try {
    mock = await startStripeMock();
  } catch (e) {
    log(`(stripe-mock not available: ${(e as Error).message}; buying with an admin grant instead)`);
  }
  const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`;
  const prose = proseLogger();
  const port = Number(process.env.LLMTOR_DEMO_PORT ?? 0);
  const stack = await startLocalStack({
    config: { demo: true, listen: { port }, ...(mock ? { stripe: { secretKey: 'sk_test_demo', webhookSecret, apiBase: mock.url } } : {}) },
    overrides: { logger: prose.logger },
  });
  try {
    log(`A local LLM-Tor stack runs in this process at ${stack.url} (roles: ${stack.proxy.config.roles.join(', ')}), on its embedded defaults:`);
    prose.flush();
    log('');
    const key = await createAccount(stack.url);
    log('1. Open an account. It is a random key, shown once (here) and stored only as a keyed hash:');
    log(`     ${key}`);

    if (mock) {
      const res = await fetch(`${stack.url}/v1/purchases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ pack: 'small' }),
      });
      const p = (await res.json()) as { checkout_url: string; session_id: string };
      log(`2. Buy credits. The Stripe stand-in (stripe-mock) opened Checkout Session ${p.session_id}.`);
      // The demo plays Stripe: the event names the account reference the proxy gave Stripe (shown to the holder too).
      const purchase = (await getAccount(stack.url, key)).account_ref;
      const payload = JSON.stringify({
        id: `evt_${randomBytes(8).toString('hex')}`,
        object: 'event',
        type: 'checkout.session.completed',
        data: { object: { id: p.session_id, object: 'checkout.session', mode: 'payment', payment_status: 'paid', client_reference_id: purchase, payment_intent: `pi_${randomBytes(8).toString('hex')}` } },
      });
      const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: webhookSecret });
      const wh = await fetch(`${stack.url}/v1/stripe/webhook`, { method: 'POST', headers: { 'stripe-signature': header, 'content-type': 'application/json' }, body: payload });
      const outcome = ((await wh.json().catch(() => ({}))) as { outcome?: string }).outcome ?? 'no outcome';
      log(`   Stripe's signed webhook (checkout.session.completed) was answered ${wh.status}: ${outcome}.`);
    } else {
      await adminGrant(stack.url, stack.adminToken, key, 500);
      log('2. Buy credits. Without stripe-mock, the admin API grants 500 credits instead.');
    }
    log(`   Balance: ${(await getAccount(stack.url, key)).balance} credits (one credit = one token).`);

    const dir = await fetchDirectory(stack.url);
    log('3. Get tokens. The issuer knows the account here, but will never see the tokens.');
    log(`   The public directory lists one key per purpose: ${dir['token-keys'].map((k) => `${k.purpose}${k.epoch ? ` (epoch ${k.epoch})` : ''}`).join(', ')}.`);
    const credit = await clientFor(dir, 'credit');
    const issuerName = stack.proxy.config.issuerName;
    const short = (b: Uint8Array) => `${toHex(b.subarray(0, 8))}… (${b.length} bytes)`;
    log(`   One token, step by step (issuer "${issuerName}", credit key id ${short(credit.keyId)}):`);
    const one = await credit.createRequest(defaultChallenge(issuerName));
    log(`     blind      a random nonce, the challenge digest and the key id, blinded with a random r:`);
    log(`                TokenRequest of ${encodeTokenRequest(one.request).length} bytes, blinded_msg ${short(one.request.blindedMsg)}`);
    const signed = decodeBatchTokenResponse(await postBatch(stack.url, key, [one.request]))[0]!;
    log(`     sign       the issuer debits 1 credit and signs what it cannot read: blind_sig ${short(signed.blindSig)}`);
    const first = await credit.finalize(one.pending, signed);
    log(`     finalize   r is divided out: a Token of ${first.length} bytes, authenticator ${short(decodeToken(first).authenticator)}`);
    verifyToken(first, (id) => (bytesEqual(id, credit.keyId) ? publicKeyFromPssSpki(credit.spki) : undefined), challengeDigest(defaultChallenge(issuerName)));
    log('     verify     RSASSA-PSS (SHA-384) checks out with the public key. The issuer cannot tell which request it came from.');
    const tokens = await issueTokens(stack.url, key, credit, issuerName, 100);
    log(`   Then ${tokens.length} more in one batched request (balance now ${(await getAccount(stack.url, key)).balance}),`);
    const perm = await issueTokens(stack.url, key, await clientFor(dir, 'permanent'), issuerName, 1);
    const trans = await issueTokens(stack.url, key, await clientFor(dir, 'transient'), issuerName, 1);
    log(`   and the two abuse tokens that make a pseudonym: ${perm.length} permanent, ${trans.length} transient.`);

    const digest = challengeDigest(defaultChallenge(issuerName));
    const keys = dir['token-keys'].map((k) => publicKeyFromPssSpki(fromBase64Url(k['token-key'])));
    let ok = 0;
    for (const t of [...tokens, ...perm, ...trans]) {
      verifyToken(t, (id) => keys.find((k) => bytesEqual(tokenKeyId(k), id)), digest);
      ok++;
    }
    log(`4. All ${ok} tokens verify against the directory's keys.`);

    await redeemWalk(stack.url, [first, ...tokens], perm[0]!, trans[0]!);
    log('');
    if (!serveAfterWalk) {
      log(`(--no-serve: stopping here; without it the interactive page would be served at ${stack.url}/demo)`);
      return;
    }
    log(`Now watch it in a browser — the client side runs in the page, with two panels per step:`);
    log('');
    log(`    ${stack.url}/demo`);
    log('');
    log(`The stack keeps serving (admin token for /v1/admin/grants: ${stack.adminToken}). Ctrl-C to stop.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    log('\nstopping');
  } finally {
    await stack.stop();
    await mock?.stop();
  }
}

/** Steps 5–7: the anonymous side. In production the client sends these over Tor; here it is loopback. */
async function redeemWalk(url: string, tokens: Uint8Array[], permanent: Uint8Array, transient: Uint8Array): Promise<void> {
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; llmtor: { price_credits: number; bytes_per_credit: number } }[] };
  const model = models.data[0]!;
  log('5. Redeem, anonymously: no account key, no cookie (a real client also goes over Tor, on a fresh circuit).');
  log(`   The public price list: ${models.data.map((m) => `${m.id} costs ${m.llmtor.price_credits} credit per request (per ${m.llmtor.bytes_per_credit} bytes)`).join('; ')}.`);
  const abuse = `permanent=${toBase64Url(permanent)}, transient=${toBase64Url(transient)}`;
  const body = JSON.stringify({ model: model.id, stream: true, messages: [{ role: 'user', content: 'Explain in one paragraph why blind signatures make this request unlinkable.' }] });
  const k = model.llmtor.price_credits * Math.max(1, Math.ceil(Buffer.byteLength(body) / model.llmtor.bytes_per_credit));
  const spend = tokens.slice(0, k);
  const headers = { 'content-type': 'application/json', authorization: formatAuthorization(spend), 'llmtor-abuse': abuse };
  log(`   The prompt goes with ${k} credit token${k > 1 ? 's' : ''} and the two abuse tokens, and the answer streams back`);
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  if (!res.ok || !res.body) throw new Error(`redemption failed: ${res.status} ${await res.text()}`);
  let answer = '';
  let events = 0;
  const decoder = new TextDecoder();
  let buffered = '';
  process.stdout.write('   (from the LOCAL STAND-IN upstream: canned text, not a language model):\n     ');
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, i);
      buffered = buffered.slice(i + 2);
      const data = event.replace(/^data: ?/, '');
      if (data === '[DONE]') continue;
      const delta = (JSON.parse(data) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '';
      answer += delta;
      events++;
      process.stdout.write(delta);
    }
  }
  process.stdout.write(`\n   (${events} server-sent events)\n`);

  const other = JSON.stringify({ model: model.id, messages: [{ role: 'user', content: 'A different question with the same token.' }] });
  const replay = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: other });
  const rj = (await replay.json()) as { error: { code: string; message: string } };
  log(`6. Replay: the same token with another prompt is refused — ${replay.status} ${rj.error.code}: ${wrap(rj.error.message, '     ')}.`);

  const retry = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  const text = await retry.text();
  const again = text
    .split('\n\n')
    .map((e) => e.replace(/^data: ?/, ''))
    .filter((d) => d && d !== '[DONE]')
    .map((d) => (JSON.parse(d) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '')
    .join('');
  const fromCache = retry.status === 200 && retry.headers.get('llmtor-replay') === 'true' && again === answer;
  log(`7. Retry: the very same request again, as if the answer had been lost on the way, ${fromCache ? 'gets the same answer back from the cache' : `did NOT come from the cache (${retry.status})`}`);
  log(`   (${retry.status}, llmtor-replay: ${retry.headers.get('llmtor-replay')}), and no second token is spent.`);
  if (!fromCache) throw new Error('the retry was not served from the cache');
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
