/// <reference types="mocha" />
/**
 * Upgrading to the bucketed spent set (issue 13): tokens spent under the previous key shape
 * (`llmtor:{rdm}:s:<hex SHA-256(token)>`, one key per token) stay spent. Without the legacy
 * look-up (legacySpentPrefix '') such a token would be accepted a second time. Real redis-server.
 */
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { spentId } from '../../src/redemption/tokenHashes.js';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

describe('redemption: tokens spent before the upgrade to spent buckets', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let abuse: string;
  const apps: TestApp[] = [];

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
    redis = await startRedis({ forceSpawn: true });
  });
  after(async () => {
    for (const a of apps) await a.close();
    await redis?.stop();
    await up?.close();
  });

  it('a token with an entry of the old shape is refused (409 token_spent); with the look-up off it would be accepted again', async () => {
    const base = { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } } };
    const withLegacy = await startTestApp({ mint, redisUrl: redis.url, config: base });
    const without = await startTestApp({ mint, redisUrl: redis.url, config: { ...base, legacySpentPrefix: '' } });
    apps.push(withLegacy, without);
    const [old, fresh] = mint.bulkTokens('credit', 2);
    const r = new Redis(redis.url);
    await r.set(`llmtor:{rdm}:s:${spentId(old!)}`, `d|${'0'.repeat(64)}`, 'PX', 3_600_000);
    r.disconnect();
    const body = { model: 'm', messages: [{ role: 'user', content: 'after the upgrade' }] };
    const send = (app: TestApp, t: Uint8Array) => chat(app.url, body, { authorization: authorization([t]), 'llmtor-abuse': abuse });

    const refused = await send(withLegacy, old!);
    assert.equal(refused.status, 409, refused.text);
    assert.equal((refused.json() as { error: { code: string } }).error.code, 'token_spent');
    assert.equal((await send(withLegacy, fresh!)).status, 200, 'an unspent token is accepted');
    // What the look-up prevents: the old entry is invisible to the bucketed shape.
    assert.equal((await send(without, old!)).status, 200);
  });
});
