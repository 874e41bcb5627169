import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { toBase64Url } from '@llmtor/protocol';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { makeAgent, postJson, type Reply } from './support/load.js';
import { spawnRedemptionServer, type ServerProcess } from './support/processes.js';
import { Mint } from './support/tokens.js';

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const config = (baseUrl: string) => ({
  models: [{ id: 'm', provider: 'p' }],
  providers: { p: { baseUrl } },
  rateLimit: { requests: 1_000_000, windowSeconds: 60 },
});

describe('reliability: two proxy processes sharing one real Redis', function () {
  this.timeout(180_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let servers: ServerProcess[] = [];
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
  });
  after(async () => {
    await up.close();
  });
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    servers = [];
    await redis?.stop();
  });

  it('1 000 tokens, 10 000 concurrent redemption attempts over both processes: exactly 1 000 accepted, 0 double-spends', async () => {
    redis = await startRedis({ forceSpawn: true });
    servers = await Promise.all([0, 1].map(() => spawnRedemptionServer({ mint, redisUrl: redis.url, config: config(up.baseUrl) })));
    const tokens = mint.bulkTokens('credit', 1000);
    const before = up.requests;
    // Every token is tried 10 times, each time for a different request, half on each process, all in flight together.
    const attempts = shuffle(tokens.flatMap((t, i) => Array.from({ length: 10 }, (_, a) => ({ i, a, t }))));
    const agents = servers.map(() => makeAgent(128));
    const attempt = ({ i, a, t }: (typeof attempts)[number], n: number) =>
      postJson(agents[n % 2]!, servers[n % 2]!.url, JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `token ${i} attempt ${a}` }] }), {
        authorization: `PrivateToken token=${toBase64Url(t)}`,
        'llmtor-abuse': abuse,
      }).then((r) => ({ i, r }));
    let replies = await Promise.all(attempts.map(attempt));
    // On a loaded machine a burst this size can outlast redisTimeoutMs: the proxy then answers 503
    // "nothing was spent". That must be true, so such attempts are retried (as a client would) and
    // must end like any other: accepted once per token, 409 otherwise.
    for (let round = 0; round < 5 && replies.some(({ r }) => r.status === 503); round++) {
      const retried = new Map<number, Promise<{ i: number; r: Reply }>>();
      replies.forEach(({ r }, n) => {
        if (r.status !== 503) return;
        assert.equal(JSON.parse(r.body).error.tokens_spent, false, r.body);
        retried.set(n, attempt(attempts[n]!, n));
      });
      const done = new Map(await Promise.all([...retried].map(async ([n, p]) => [n, await p] as const)));
      replies = replies.map((x, n) => done.get(n) ?? x);
    }
    agents.forEach((a) => a.destroy());
    const acceptedPerToken = new Map<number, number>();
    const statuses = new Map<number, number>();
    for (const { i, r } of replies) {
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 200) acceptedPerToken.set(i, (acceptedPerToken.get(i) ?? 0) + 1);
      else assert.equal(r.status, 409, r.body);
    }
    const doubleSpends = [...acceptedPerToken.values()].filter((n) => n > 1).length;
    assert.equal(doubleSpends, 0);
    assert.equal(acceptedPerToken.size, 1000);
    assert.equal(statuses.get(200), 1000);
    assert.equal(statuses.get(409), 9000);
    assert.equal(up.requests - before, 1000, 'one upstream call per token');
  });

  it('Redis killed during load: 503s while it is down, no token accepted twice, no accepted request lost after restart (AOF)', async () => {
    redis = await startRedis({ appendOnly: true, forceSpawn: true });
    servers = await Promise.all([0, 1].map(() => spawnRedemptionServer({ mint, redisUrl: redis.url, config: config(up.baseUrl) })));
    const tokens = mint.bulkTokens('credit', 600);
    const agents = servers.map(() => makeAgent(16));
    const bodyOf = (i: number, v = 'a') => JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `token ${i} ${v}` }] });
    const send = (n: number, i: number, body: string): Promise<Reply> =>
      postJson(agents[n % 2]!, servers[n % 2]!.url, body, { authorization: `PrivateToken token=${toBase64Url(tokens[i]!)}`, 'llmtor-abuse': abuse });

    // Phase 1: steady load; Redis is SIGKILLed in the middle and restarted 600 ms later.
    const upBefore = up.requests;
    const results: { i: number; r: Reply }[] = [];
    let next = 0;
    const worker = async (w: number) => {
      while (next < tokens.length) {
        const i = next++;
        results.push({ i, r: await send(w, i, bodyOf(i)) });
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const killer = (async () => {
      while (results.length < 150) await new Promise((r) => setTimeout(r, 5));
      await redis.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 600));
      await redis.restart();
    })();
    await Promise.all([...Array.from({ length: 8 }, (_, w) => worker(w)), killer]);
    // Give the clients time to reconnect.
    await new Promise((r) => setTimeout(r, 500));

    const accepted = results.filter((x) => x.r.status === 200);
    const unavailable = results.filter((x) => x.r.status === 503);
    const other = results.filter((x) => x.r.status !== 200 && x.r.status !== 503);
    assert.ok(unavailable.length > 0, 'some requests met the dead Redis');
    for (const u of unavailable) assert.equal((JSON.parse(u.r.body) as { error: { code: string } }).error.code, 'store_unavailable');
    assert.deepEqual(other.map((x) => x.r.status), []);
    assert.ok(accepted.length > 150, `accepted ${accepted.length}`);
    assert.equal(up.requests - upBefore, accepted.length, 'every upstream call was an accepted request, and only those');

    // A pod may still be reconnecting: 503 is its fail-closed answer, so retry those (bounded).
    const sendWhenUp = async (n: number, i: number, body: string): Promise<Reply> => {
      for (let attempt = 0; ; attempt++) {
        const r = await send(n, i, body);
        if (r.status !== 503 || attempt >= 100) return r;
        await new Promise((res) => setTimeout(res, 100));
      }
    };

    // Phase 2: after the restart every accepted token is still spent (the claim survived the crash).
    const upMid = up.requests;
    for (const [n, { i }] of accepted.entries()) {
      const r = await sendWhenUp(n, i, bodyOf(i, 'different request'));
      assert.equal(r.status, 409, `accepted token ${i} was accepted again: ${r.status}`);
    }
    // The same request again is never a second upstream call (cached answer, or "in progress" if the crash took the finish).
    for (const [n, { i }] of accepted.entries()) {
      const r = await sendWhenUp(n, i, bodyOf(i));
      assert.ok(r.status === 200 || r.status === 409, `${r.status}`);
      if (r.status === 200) assert.equal(r.headers['llmtor-replay'], 'true');
    }
    assert.equal(up.requests, upMid, 'no accepted token reached the upstream a second time');

    // Tokens refused with 503 were not spent: a retry now succeeds (unless the crash hit between the claim and its reply: then "in progress").
    let recovered = 0;
    for (const [n, { i }] of unavailable.entries()) {
      const r = await sendWhenUp(n, i, bodyOf(i));
      if (r.status === 200) recovered++;
      else assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'request_in_progress');
    }
    assert.ok(recovered >= unavailable.length - 16, `${recovered} of ${unavailable.length} refused tokens usable again`);
    agents.forEach((a) => a.destroy());
    console.log(`      phase 1: ${accepted.length} accepted, ${unavailable.length} × 503; after restart ${recovered}/${unavailable.length} of the 503'd tokens redeemed`);
  });
});
