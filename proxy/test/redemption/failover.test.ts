/// <reference types="mocha" />
/**
 * Issue 13, "double spends after a Redis failover": replication is asynchronous, so a claim the
 * primary answered can be missing on the replica Sentinel promotes; the token is then accepted
 * a second time. Real processes: a primary (AOF appendfsync always), one replica, three
 * Sentinels (`redis-server --sentinel`), the proxy's production client through the Sentinels.
 * The replica is made to fall behind with Redis's own means (its replication link is cut and it
 * can no longer authenticate to the primary), the primary is SIGKILLed, Sentinel promotes the
 * replica, the old primary comes back as a replica. Every token accepted before the kill is
 * then tried again for a different request: none may be accepted twice.
 */
import assert from 'node:assert/strict';
import { toBase64Url } from '@llmtor/protocol';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../src/redis/connect.js';
import { startSentinelFailoverSet, type FailoverSetHandle } from '../support/redisTopologies.js';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('redemption: no double spend across a Sentinel failover with a replica that is behind', function () {
  this.timeout(150_000);
  let set: FailoverSetHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
    set = await startSentinelFailoverSet();
    const client = createRedisClient({ sentinels: set.sentinels, sentinelName: set.masterName, password: set.password, tls: false }, 'redemption') as Redis;
    client.on('error', () => undefined);
    await until('the client to be ready', 10_000, async () => client.status === 'ready');
    app = await startTestApp({
      mint,
      redisClient: client,
      // durableClaims.replicas is 'auto': 1 with Sentinel.
      config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, redisTimeoutMs: 1_000, rateLimit: { requests: 100_000, windowSeconds: 60 } },
    });
  });
  after(async () => {
    await app?.close();
    await set?.stop();
    await up?.close();
  });

  const send = (t: Uint8Array, prompt: string) =>
    chat(app.url, { model: 'm', messages: [{ role: 'user', content: prompt }] }, { authorization: `PrivateToken token=${toBase64Url(t)}`, 'llmtor-abuse': abuse });

  it('every token accepted before the primary was killed is refused afterwards for another request', async () => {
    const healthy = mint.bulkTokens('credit', 30);
    const behind = mint.bulkTokens('credit', 30);
    const accepted: Uint8Array[] = [];

    // 1. Healthy replica: accepted (each claim confirmed by WAIT).
    for (const [i, t] of healthy.entries()) {
      const r = await send(t, `healthy ${i}`);
      assert.equal(r.status, 200, r.text);
      accepted.push(t);
    }

    // 2. The replica falls behind: its link is cut and it cannot authenticate to reconnect.
    await set.command(set.replicaPort, 'CONFIG', 'SET', 'masterauth', 'not-the-password');
    await set.command(set.primaryPort, 'CLIENT', 'KILL', 'TYPE', 'replica');
    await until('the replica link to be down', 10_000, async () => (await set.command(set.replicaPort, 'INFO', 'replication')).includes('master_link_status:down'));
    const refusedWhileBehind: Uint8Array[] = [];
    // All at once: Sentinel does not promote a replica whose link has been down for more than ~10 × down-after.
    const behindReplies = await Promise.all(behind.map((t, i) => send(t, `behind ${i}`)));
    for (const [i, t] of behind.entries()) {
      const r = behindReplies[i]!;
      if (r.status === 200) accepted.push(t);
      else {
        assert.equal(r.status, 503, r.text);
        assert.equal((r.json() as { error: { code: string } }).error.code, 'store_unavailable');
        refusedWhileBehind.push(t);
      }
    }

    // 3. The primary dies; Sentinel promotes the replica; the old primary returns as a replica.
    await set.killPrimary();
    await until('Sentinel to promote the replica', 30_000, async () => (await set.masterPort()) === set.replicaPort);
    await set.command(set.replicaPort, 'CONFIG', 'SET', 'masterauth', set.password);
    await set.restartPrimary();
    await until('the old primary to be a replica of the new one', 40_000, async () => {
      const info = await set.command(set.primaryPort, 'INFO', 'replication');
      return info.includes('role:slave') && info.includes(`master_port:${set.replicaPort}`) && info.includes('master_link_status:up');
    });

    // 4. Replay every accepted token for another request (a 503 while the client reconnects is retried, bounded).
    const sendWhenUp = async (t: Uint8Array, prompt: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await send(t, prompt);
        if (r.status !== 503 || attempt >= 100) return r;
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    let doubleSpent = 0;
    for (const [i, t] of accepted.entries()) {
      const r = await sendWhenUp(t, `replay ${i}`);
      if (r.status === 200) doubleSpent++;
      else assert.equal(r.status, 409, r.text);
    }
    assert.equal(doubleSpent, 0, `${doubleSpent} of ${accepted.length} tokens accepted before the kill were accepted again`);
    assert.equal(accepted.length, healthy.length, 'nothing is accepted while the replica is behind');

    // The 503s said nothing was spent (or that the claim may be held for that same request): the tokens work now.
    for (const [i, t] of refusedWhileBehind.entries()) assert.equal((await sendWhenUp(t, `behind ${i}`)).status, 200);
    console.log(`      ${healthy.length} accepted with a healthy replica, ${refusedWhileBehind.length} refused (503) while it was behind, 0 double spends after the failover`);
  });
});
