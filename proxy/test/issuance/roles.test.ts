/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { ISSUER_DIRECTORY_PATH } from '@llmtor/protocol';
import { loadConfig } from '../../src/config.js';
import { startProxy } from '../../src/stack.js';
import { ADMIN_TOKEN, sharedTestKeys, StaticKeySource } from '../support/issuanceHarness.js';

describe('issuance: roles', function () {
  this.timeout(60_000);
  let accounts: RedisHandle;
  let spent: RedisHandle;
  before(async () => {
    accounts = await startRedis({ forceSpawn: true });
    spent = await startRedis({ forceSpawn: true });
  });
  after(async () => {
    await accounts.stop();
    await spent.stop();
  });

  it('a redemption-only process serves no account API, holds no private keys and never connects to the account Redis', async () => {
    const keys = await sharedTestKeys();
    const config = loadConfig({
      env: { ISSUANCE_REDIS_URL: accounts.url, REDEMPTION_REDIS_URL: spent.url, LLMTOR_ROLES: 'redemption' },
      overrides: { logLevel: 'silent', listen: { host: '127.0.0.1', port: 0 } },
    });
    // Public keys only, as DirectoryKeySource gives a redemption-only process.
    const proxy = await startProxy(config, { keySource: new StaticKeySource(async () => ({ entries: keys.entries, privateKeys: new Map() })) });
    const probe = new Redis(accounts.url);
    try {
      assert.deepEqual(proxy.modules.map((m) => m.role), ['redemption']);
      assert.equal(proxy.issuanceStore, undefined);
      for (const [method, path] of [['POST', '/v1/accounts'], ['GET', '/v1/account'], ['POST', '/token-request'], ['POST', '/v1/stripe/webhook'], ['POST', '/v1/admin/grants']] as const) {
        assert.equal((await fetch(`${proxy.url}${path}`, { method })).status, 404, `${method} ${path}`);
      }
      assert.equal((await fetch(`${proxy.url}${ISSUER_DIRECTORY_PATH}`)).status, 200);
      assert.equal((await fetch(`${proxy.url}/readyz`)).status, 200);
      const clients = String(await probe.call('CLIENT', 'LIST')).trim().split('\n');
      assert.equal(clients.length, 1, 'only this probe is connected to the account Redis');
      assert.equal(await probe.dbsize(), 0);
    } finally {
      probe.disconnect();
      await proxy.stop();
    }
  });

  it('in a process with both roles, ADMIN_TOKEN also opens the pseudonym admin API of the redemption role (unless that sets its own)', async () => {
    const keys = await sharedTestKeys();
    const pseudonym = 'ab'.repeat(32);
    const start = (redemption: Record<string, unknown> = {}) =>
      startProxy(
        loadConfig({
          env: { ADMIN_TOKEN, LLMTOR_ROLES: 'issuance,redemption' },
          overrides: { logLevel: 'silent', listen: { host: '127.0.0.1', port: 0 }, redemption },
        }),
        { keySource: new StaticKeySource(async () => keys) },
      );
    const put = (url: string, token: string) => fetch(`${url}/admin/pseudonyms/blacklist/permanent/${pseudonym}`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
    const proxy = await start();
    try {
      assert.deepEqual(proxy.modules.map((m) => m.role), ['issuance', 'redemption']);
      assert.equal((await put(proxy.url, 'not-the-admin-token-0123456789abcdefgh')).status, 401);
      const added = await put(proxy.url, ADMIN_TOKEN);
      assert.equal(added.status, 200, await added.clone().text());
      assert.equal(((await added.json()) as { pseudonym: string }).pseudonym, pseudonym);
      const list = (await (await fetch(`${proxy.url}/admin/pseudonyms/blacklist`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { data: { pseudonym: string }[] };
      assert.deepEqual(list.data.map((e) => e.pseudonym), [pseudonym]);
    } finally {
      await proxy.stop();
    }
    const own = 'redemption-own-admin-token-0123456789';
    const separate = await start({ adminToken: own });
    try {
      assert.equal((await put(separate.url, ADMIN_TOKEN)).status, 401);
      assert.equal((await put(separate.url, own)).status, 200);
    } finally {
      await separate.stop();
    }
  });
});
