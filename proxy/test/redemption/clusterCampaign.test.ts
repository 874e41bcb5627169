/// <reference types="mocha" />
/**
 * Issue 13: the spent set shards. On a real 3-master Redis Cluster, two app instances (each its
 * own Cluster client and store) redeem the same tokens concurrently:
 *   - single-token requests: every token sent 4 times at once, with 3 different prompts, over both
 *     instances: one prompt at most is answered per token (replays of that same prompt are fine);
 *   - two-token requests over overlapping pairs {t_i, t_i+1}, all at once over both instances: no
 *     token is spent by two answered requests, and a refused request leaves nothing claimed (every
 *     token no answered request used is then redeemable), i.e. all-or-nothing across slots;
 *   - the spent buckets sit on every master.
 */
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { startRedisCluster, type ClusterHandle } from '../support/redisTopologies.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

describe('redemption: double-spend campaign on a real 3-master Cluster, two app instances', function () {
  this.timeout(120_000);
  let cluster: ClusterHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  const apps: TestApp[] = [];
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
    cluster = await startRedisCluster(3);
    for (let i = 0; i < 2; i++) {
      const c = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { scaleReads: 'master', enableOfflineQueue: true });
      c.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        setTimeout(() => reject(new Error('cluster client not ready')), 10_000).unref();
      });
      apps.push(
        await startTestApp({
          mint,
          redisClient: c,
          config: {
            models: [
              { id: 'm', provider: 'p' },
              { id: 'm2', provider: 'p', priceCredits: 2 },
            ],
            providers: { p: { baseUrl: up.baseUrl } },
            rateLimit: { requests: 100_000 },
            // No replicas in this cluster: durability is the failover tests' subject.
            durableClaims: { replicas: 0 },
          },
        }),
      );
    }
  });
  after(async () => {
    for (const a of apps) await a.close();
    await cluster?.stop();
    await up?.close();
  });

  const send = (app: TestApp, model: string, tokens: Uint8Array[], prompt: string) =>
    chat(app.url, { model, messages: [{ role: 'user', content: prompt }] }, { authorization: authorization(tokens), 'llmtor-abuse': abuse });

  it('0 double spends; multi-token claims are all-or-nothing across slots', async () => {
    const t0 = Date.now();
    const statuses = new Map<number, number>();
    const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);

    // Single tokens, 4 concurrent attempts each (prompts a, b, c, a) over both instances.
    const singles = mint.bulkTokens('credit', 150);
    let doubleSpends = 0;
    let answeredSingles = 0;
    await Promise.all(
      singles.map(async (t, i) => {
        const tries = await Promise.all(['a', 'b', 'c', 'a'].map((p, j) => send(apps[j % 2]!, 'm', [t], `single ${i} prompt ${p}`).then((r) => ({ p, r }))));
        const answered = new Set<string>();
        for (const { p, r } of tries) {
          count(r.status);
          if (r.status === 200) answered.add(p);
        }
        if (answered.size > 1) doubleSpends++;
        if (answered.size === 1) answeredSingles++;
      }),
    );

    // Overlapping pairs {u_i, u_i+1}, every request at once.
    const u = mint.bulkTokens('credit', 151);
    const pairs = Array.from({ length: 150 }, (_, i) => i);
    const results = await Promise.all(pairs.map((i) => send(apps[i % 2]!, 'm2', [u[i]!, u[i + 1]!], `pair ${i}`).then((r) => ({ i, status: r.status }))));
    const spentBy = new Map<number, number>();
    for (const { i, status } of results) {
      count(status);
      if (status !== 200) continue;
      for (const j of [i, i + 1]) {
        if (spentBy.has(j)) doubleSpends++;
        spentBy.set(j, i);
      }
    }
    // Every token no answered request used was left unclaimed: it redeems now.
    const leftover = u.map((_, j) => j).filter((j) => !spentBy.has(j));
    const after = await Promise.all(leftover.map((j) => send(apps[j % 2]!, 'm', [u[j]!], `leftover ${j}`)));
    const notFree = after.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.text.slice(0, 80)}`);

    // Where the spent entries are: buckets on every master.
    const perMaster: number[] = [];
    for (const n of cluster.nodes) {
      const r = new Redis(Number(n.split(':')[1]), '127.0.0.1');
      let keys = 0;
      let cursor = '0';
      do {
        const [next, batch] = await r.scan(cursor, 'MATCH', 'llmtor:*s:*', 'COUNT', 1000);
        cursor = next;
        keys += batch.length;
      } while (cursor !== '0');
      perMaster.push(keys);
      r.disconnect();
    }
    const seconds = (Date.now() - t0) / 1000;
    process.stdout.write(
      `      campaign: ${singles.length}×4 single-token + ${pairs.length} pair requests in ${seconds.toFixed(1)} s; answered singles ${answeredSingles}, pairs ${spentBy.size / 2}, leftovers ${leftover.length}; statuses ${JSON.stringify(Object.fromEntries(statuses))}; spent buckets per master ${perMaster.join('/')}\n`,
    );
    assert.equal(doubleSpends, 0, 'double spends');
    assert.equal(answeredSingles, singles.length, 'every single token answered for exactly one prompt');
    assert.ok(spentBy.size >= 2, 'some pairs were answered');
    assert.deepEqual(notFree, [], 'tokens of refused pair requests are unclaimed');
    assert.ok(perMaster.every((n) => n > 0), `spent buckets on every master: ${perMaster.join('/')}`);
    assert.ok(seconds < 120);
  });
});
