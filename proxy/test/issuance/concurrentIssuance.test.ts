/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, createAccount } from '../../src/dev/issuanceClient.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { accountRef, hammer, startIssuanceProxy } from '../support/issuanceHarness.js';

describe('issuance: concurrent issuance from one account', function () {
  this.timeout(120_000);
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  for (const backend of ['redis', 'in-process'] as const) {
    it(`1000 concurrent requests with credit for 500 sign exactly 500 tokens and leave balance 0 (${backend} store)`, async () => {
      const proxy = await startIssuanceProxy(backend === 'redis' ? { redisUrl: redis.url } : {});
      try {
        const key = await createAccount(proxy.url);
        await adminGrant(proxy.url, (proxy.config.adminToken as string), key, 500);
        const results = await hammer(proxy.keys2.entries, [proxy.url], key, 1000);
        const ok = results.filter((r) => r.status === 200);
        assert.equal(ok.length, 500);
        assert.ok(ok.every((r) => r.valid), 'every 200 carries a valid blind signature');
        const refused = results.filter((r) => r.status !== 200);
        assert.ok(refused.every((r) => r.status === 402), `only 402s besides the 200s, got ${[...new Set(refused.map((r) => r.status))].join(',')}`);
        const body = JSON.parse(Buffer.from(refused[0]!.body).toString()) as { error: { code: string; balance: number } };
        assert.equal(body.error.code, 'insufficient_credits');
        assert.equal(body.error.balance, 0);
        const store = proxy.issuanceStore!;
        const id = await accountRef(proxy.url, key);
        assert.equal(await store.balance(id), 0);
        const journal = await store.journal(id);
        const check = checkJournal(journal, 0);
        assert.deepEqual(check.problems, []);
        assert.equal(journal.filter((e) => e.type === 'issue').length, 500);
        assert.equal(journal.filter((e) => e.type === 'grant').length, 1);
      } finally {
        await proxy.stop();
      }
    });
  }
});
