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
 * LLMTOR_DEMO_KEEP=1 leaves the stack running.
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
import { adminGrant, clientFor, createAccount, fetchDirectory, getAccount, issueTokens, postBatch } from './dev/identityClient.js';
import { startStripeMock, type StripeMock } from './dev/stripeMock.js';
import { startLocalStack } from './localStack.js';

const log = (s: string) => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  let mock: StripeMock | undefined;
  try {
    mock = await startStripeMock();
  } catch (e) {
    log(`(stripe-mock not available: ${(e as Error).message}; buying with an admin grant instead)`);
  }
  const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`;
  const stack = await startLocalStack({
    config: mock ? { stripe: { secretKey: 'sk_test_demo', webhookSecret, apiBase: mock.url } } : {},
  });
  try {
    log(`local stack at ${stack.url} (roles: ${stack.proxy.config.roles.join(', ')})`);
    const key = await createAccount(stack.url);
    log(`1. account created; account key (shown once): ${key}`);

    if (mock) {
      const res = await fetch(`${stack.url}/v1/purchases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ pack: 'small' }),
      });
      const p = (await res.json()) as { checkout_url: string; session_id: string };
      log(`2. Checkout Session ${p.session_id} created at the Stripe stand-in: ${p.checkout_url}`);
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
      log(`   webhook checkout.session.completed → ${wh.status} ${await wh.text()}`);
    } else {
      await adminGrant(stack.url, stack.adminToken, key, 500);
      log('2. admin grant of 500 credits');
    }
    log(`   balance: ${(await getAccount(stack.url, key)).balance}`);

    const dir = await fetchDirectory(stack.url);
    log(`3. directory: ${dir['token-keys'].map((k) => `${k.purpose}${k.epoch ? ` ${k.epoch}` : ''}`).join(', ')}; issuer-request-uri ${dir['issuer-request-uri']}`);
    const credit = await clientFor(dir, 'credit');
    const issuerName = stack.proxy.config.issuerName;
    const short = (b: Uint8Array) => `${toHex(b.subarray(0, 8))}… (${b.length} bytes)`;
    log(`   one token, step by step (issuer "${issuerName}", credit key id ${short(credit.keyId)}):`);
    const one = await credit.createRequest(defaultChallenge(issuerName));
    log(`     blind:    random nonce + challenge digest + key id → blinded message ${short(one.request.blindedMsg)}; TokenRequest ${encodeTokenRequest(one.request).length} bytes`);
    const signed = decodeBatchTokenResponse(await postBatch(stack.url, key, [one.request]))[0]!;
    log(`     sign:     the issuer debits 1 credit and blind-signs without seeing the token: blind_sig ${short(signed.blindSig)}`);
    const first = await credit.finalize(one.pending, signed);
    log(`     finalize: unblind → Token ${first.length} bytes, authenticator ${short(decodeToken(first).authenticator)} (nonce ${short(decodeToken(first).nonce)})`);
    verifyToken(first, (id) => (bytesEqual(id, credit.keyId) ? publicKeyFromPssSpki(credit.spki) : undefined), challengeDigest(defaultChallenge(issuerName)));
    log('     verify:   RSASSA-PSS SHA-384 over the token input checks out with the public key; the issuer cannot tell which request it came from');
    const tokens = await issueTokens(stack.url, key, credit, issuerName, 100);
    log(`   issued a batch of ${tokens.length} credit tokens; balance now ${(await getAccount(stack.url, key)).balance}`);
    const perm = await issueTokens(stack.url, key, await clientFor(dir, 'permanent'), issuerName, 1);
    const trans = await issueTokens(stack.url, key, await clientFor(dir, 'transient'), issuerName, 1);
    log(`   abuse tokens: ${perm.length} permanent, ${trans.length} transient`);

    const digest = challengeDigest(defaultChallenge(issuerName));
    const keys = dir['token-keys'].map((k) => publicKeyFromPssSpki(fromBase64Url(k['token-key'])));
    let ok = 0;
    for (const t of [...tokens, ...perm, ...trans]) {
      verifyToken(t, (id) => keys.find((k) => bytesEqual(tokenKeyId(k), id)), digest);
      ok++;
    }
    log(`4. ${ok} tokens verify against the directory's keys`);

    await redeemWalk(stack.url, [first, ...tokens], perm[0]!, trans[0]!);
    if (process.env.LLMTOR_DEMO_KEEP === '1') {
      log(`stack keeps running at ${stack.url} (admin token ${stack.adminToken}); Ctrl-C to stop`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    await stack.stop();
    await mock?.stop();
  }
}

/** Steps 5–7: the anonymous side. In production the client sends these over Tor; here it is loopback. */
async function redeemWalk(url: string, tokens: Uint8Array[], permanent: Uint8Array, transient: Uint8Array): Promise<void> {
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; llmtor: { price_credits: number; bytes_per_credit: number } }[] };
  const model = models.data[0]!;
  log(`5. models: ${models.data.map((m) => `${m.id} (${m.llmtor.price_credits} credit/request, ${m.llmtor.bytes_per_credit} bytes per credit)`).join(', ')}`);
  const abuse = `permanent=${toBase64Url(permanent)}, transient=${toBase64Url(transient)}`;
  const body = JSON.stringify({ model: model.id, stream: true, messages: [{ role: 'user', content: 'Explain in one paragraph why blind signatures make this request unlinkable.' }] });
  const k = model.llmtor.price_credits * Math.max(1, Math.ceil(Buffer.byteLength(body) / model.llmtor.bytes_per_credit));
  const spend = tokens.slice(0, k);
  const headers = { 'content-type': 'application/json', authorization: formatAuthorization(spend), 'llmtor-abuse': abuse };
  log(`   POST /v1/chat/completions, stream: true, ${k} credit token(s) + the two abuse tokens; no account, no cookie`);
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  if (!res.ok || !res.body) throw new Error(`redemption failed: ${res.status} ${await res.text()}`);
  let answer = '';
  let events = 0;
  const decoder = new TextDecoder();
  let buffered = '';
  process.stdout.write('   streamed answer (from the LOCAL STAND-IN upstream, canned text): ');
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
  process.stdout.write(`\n   (${events} SSE events)\n`);

  const other = JSON.stringify({ model: model.id, messages: [{ role: 'user', content: 'A different question with the same token.' }] });
  const replay = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: other });
  const rj = (await replay.json()) as { error: { code: string; message: string } };
  log(`6. replay of the same token on another request → ${replay.status} ${rj.error.code}: ${rj.error.message}`);

  const retry = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  const text = await retry.text();
  const again = text
    .split('\n\n')
    .map((e) => e.replace(/^data: ?/, ''))
    .filter((d) => d && d !== '[DONE]')
    .map((d) => (JSON.parse(d) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '')
    .join('');
  log(`7. retry of the same request with the same token (the answer was "lost") → ${retry.status}, llmtor-replay: ${retry.headers.get('llmtor-replay')}, same answer: ${again === answer}, no second charge`);
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
