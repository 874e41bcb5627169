import assert from 'node:assert/strict';
import { parseWwwAuthenticate, toBase64Url } from '@llmtor/protocol';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp } from './support/testApp.js';

const DAY = 86_400_000;

describe('key rotation on the redemption side', function () {
  this.timeout(20_000);

  it('accepts tokens of a retired key until its redemption window ends, then rejects them; the challenge names the newest key', async () => {
    const now = Date.now();
    const mint = await Mint.create({ now });
    // The key "credit" from Mint.create is the current one; "old" stopped issuing yesterday and redeems for 2 more days.
    await mint.addKey('old', 'credit', { notBefore: now - 30 * DAY, issuanceEnd: now - DAY, redemptionEnd: now + 2 * DAY });
    const app = await startTestApp({ mint });
    try {
      const abuse = await mint.abuseHeader();
      const body = (s: string) => ({ model: 'llmtor-stand-in', messages: [{ role: 'user', content: s }] });
      const oldTokens = await mint.tokens('old', 2);
      assert.equal((await chat(app.url, body('a'), { authorization: authorization([oldTokens[0]!]), 'llmtor-abuse': abuse })).status, 200);

      app.setNow(now + 3 * DAY);
      const late = await chat(app.url, body('b'), { authorization: authorization([oldTokens[1]!]), 'llmtor-abuse': abuse });
      assert.equal(late.status, 401);
      assert.equal((late.json() as { error: { reason: string } }).error.reason, 'unknown_key_id');
      const challenge = parseWwwAuthenticate(late.headers.get('www-authenticate')!);
      assert.equal(toBase64Url(challenge.tokenKey!), mint.keys.get('credit')!.meta.publicKey);
      // The current key's tokens still work at that time.
      assert.equal((await chat(app.url, body('c'), { authorization: authorization(await mint.tokens('credit', 1)), 'llmtor-abuse': abuse })).status, 200);
    } finally {
      await app.close();
    }
  });

  it('rejects a token before its key is valid (not-before in the future)', async () => {
    const now = Date.now();
    const mint = await Mint.create({ now });
    await mint.addKey('future', 'credit', { notBefore: now + DAY, issuanceEnd: now + 10 * DAY, redemptionEnd: now + 20 * DAY });
    const app = await startTestApp({ mint });
    try {
      const r = await chat(app.url, { model: 'llmtor-stand-in', messages: [{ role: 'user', content: 'x' }] }, { authorization: authorization(await mint.tokens('future', 1)), 'llmtor-abuse': await mint.abuseHeader() });
      assert.equal(r.status, 401);
    } finally {
      await app.close();
    }
  });
});
