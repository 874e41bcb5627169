/// <reference types="mocha" />
/**
 * Outside a Redis Cluster every key of a request lives on one node, so the Redis store makes one
 * round trip per claim (blacklist, rate limit, legacy look-up and every token bucket in one
 * script), one per finish and one per release. Counted on a real redis-server with MONITOR: the
 * commands the store's connection sends (commands run inside a script show as "lua" and do not
 * count). Then the same decisions as on a Cluster (redisTopologies.test.ts), through that path.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { Command, Redis } from 'ioredis';
import { RequestScript } from '../../src/redemption/redisScripts.js';
import { RedisRedemptionStore } from '../../src/redemption/redisStore.js';
import type { ClaimRequest } from '../../src/redemption/store.js';

const hex = () => randomBytes(32).toString('hex');

describe('redemption: one Redis round trip per claim, finish and release on a single node', function () {
  this.timeout(30_000);
  let redis: RedisHandle;
  let client: Redis;
  let monitor: Redis;
  /** Commands sent by the store's connection, as MONITOR saw them (name first). */
  const seen: string[][] = [];
  let source = '';

  before(async () => {
    redis = await startRedis({ forceSpawn: true });
    client = new Redis(redis.url);
    client.on('error', () => undefined);
    // A connection of its own (monitor() duplicates the client's).
    monitor = await client.monitor();
    monitor.on('error', () => undefined);
    monitor.on('monitor', (_time: string, args: string[], from: string) => {
      if (from === source) seen.push(args);
    });
    await client.ping();
    source = `${client.stream.localAddress}:${client.stream.localPort}`;
  });
  after(async () => {
    monitor?.disconnect();
    client?.disconnect();
    await redis?.stop();
  });

  /** The commands the store's connection sends while `f` runs (waits until MONITOR has shown them all). */
  async function commandsOf(f: () => Promise<unknown>): Promise<string[]> {
    seen.length = 0;
    await f();
    const marker = hex();
    await client.echo(marker);
    const t0 = Date.now();
    while (!seen.some((a) => a[1] === marker) && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
    const i = seen.findIndex((a) => a[1] === marker);
    assert.ok(i >= 0, 'MONITOR showed the marker');
    return seen.slice(0, i).map((a) => a[0]!.toLowerCase());
  }

  it('a claim with abuse tokens, the legacy look-up and tokens in several buckets is one command; finish and release one each', async () => {
    // Defaults of the app: legacy look-up on, 4 bucket digits; rate limit and pseudonym as a request with abuse tokens has.
    const store = new RedisRedemptionStore(client, 'llmtor:rdm:', 5_000, undefined, { bucketHexDigits: 4, legacyPrefix: 'llmtor:{rdm}:' });
    const pseudonym = { permanent: hex(), transient: hex() };
    const now = Date.now();
    const request = (spentIds: string[], binding: string): ClaimRequest => ({
      spentIds,
      expiresAt: spentIds.map(() => now + 3_600_000),
      binding,
      now,
      leaseMs: 30_000,
      pseudonym,
      rateLimit: { limit: 1_000, windowMs: 60_000 },
    });
    // First use: each script is sent in full once per connection (EVAL), and the clock offset is read (TIME script).
    const first = [hex()];
    await commandsOf(async () => {
      assert.equal((await store.claim(request(first, 'w'))).kind, 'claimed');
      await store.finish(first, [now + 3_600_000], 'w', undefined, 60_000);
      await store.release(first, [now + 3_600_000], 'w', 'free');
    });

    for (const n of [1, 3]) {
      for (let round = 0; round < 5; round++) {
        const ids = Array.from({ length: n }, hex);
        const binding = hex();
        const claim = await commandsOf(async () => assert.deepEqual(await store.claim(request(ids, binding)), { kind: 'claimed' }));
        assert.deepEqual(claim, ['evalsha'], `claim of ${n} token(s): ${claim.join(' ')}`);
        const expiresAt = ids.map(() => now + 3_600_000);
        const finish = await commandsOf(async () => assert.equal(await store.finish(ids, expiresAt, binding, Buffer.from('answer'), 60_000), true));
        assert.deepEqual(finish, ['evalsha'], `finish of ${n} token(s): ${finish.join(' ')}`);
        const again = await commandsOf(async () => assert.equal((await store.claim(request(ids, binding))).kind, 'done'));
        assert.deepEqual(again, ['evalsha'], `a replay (with its cached answer): ${again.join(' ')}`);
        const other = Array.from({ length: n }, hex);
        // (Inside commandsOf only so that its command is not counted for the release below.)
        await commandsOf(() => store.claim(request(other, binding)));
        const release = await commandsOf(() => store.release(other, expiresAt, binding, 'free'));
        assert.deepEqual(release, ['evalsha'], `release of ${n} token(s): ${release.join(' ')}`);
      }
    }
  });

  it('after a SCRIPT FLUSH (restart, failover) the script is sent once in full (EVAL), then by hash again', async () => {
    const store = new RedisRedemptionStore(client, 'llmtor:rdm:', 5_000);
    const now = Date.now();
    const claim = () => store.claim({ spentIds: [hex()], expiresAt: [now + 60_000], binding: hex(), now, leaseMs: 30_000 });
    await commandsOf(claim);
    await commandsOf(() => client.script('FLUSH'));
    assert.deepEqual(await commandsOf(async () => assert.deepEqual(await claim(), { kind: 'claimed' })), ['evalsha', 'eval']);
    assert.deepEqual(await commandsOf(async () => assert.deepEqual(await claim(), { kind: 'claimed' })), ['evalsha']);
  });

  it('the hand-encoded EVALSHA is byte for byte what ioredis writes for the same arguments', () => {
    const lua = 'return 1';
    const s = new RequestScript(lua);
    const sha1 = createHash('sha1').update(lua).digest('hex');
    // ASCII keys (one string, the usual case), and a key prefix with a non-ASCII character (UTF-8).
    for (const prefix of ['llmtor:', 'llmtör:']) {
      const args = () => [3, `${prefix}{ab}:1`, 'k2', 'k3', Buffer.from([0, 255, 13, 10, 36, 0xc3]), 1_764_000_000_000, '', 'x'.repeat(300), randomBytes(8)];
      const same = args();
      const theirs = new Command('evalsha', [sha1, ...same]).toWritable(undefined as never);
      assert.deepEqual(s.encode([...same]), Buffer.isBuffer(theirs) ? theirs : Buffer.from(theirs), prefix);
    }
  });

  it('decides as bucket by bucket does: in progress, conflict, done with the answer, all-or-nothing, release, blacklist, rate limit, legacy entries', async () => {
    const store = new RedisRedemptionStore(client, 'llmtor:rdm:', 5_000, undefined, { bucketHexDigits: 4, legacyPrefix: 'llmtor:{rdm}:' });
    const now = Date.now();
    const pseudonym = { permanent: hex(), transient: hex() };
    const claim = (spentIds: string[], binding: string, limit = 100) =>
      store.claim({ spentIds, expiresAt: spentIds.map(() => now + 60_000), binding, now, leaseMs: 30_000, pseudonym, rateLimit: { limit, windowMs: 60_000 } });
    const ids = [hex(), hex(), hex()];
    assert.deepEqual(await claim(ids, 'b1'), { kind: 'claimed' });
    const busy = await claim(ids, 'b1');
    assert.ok(busy.kind === 'in_progress' && busy.retryAfterMs > 0 && busy.retryAfterMs <= 30_000);
    assert.equal((await claim(ids, 'b2')).kind, 'conflict');
    assert.equal(await store.finish(ids, ids.map(() => now + 60_000), 'b1', Buffer.from('cached answer'), 60_000), true);
    const at = store.spentLocation(ids[0]!, now + 60_000);
    assert.equal((await client.hgetBuffer(at.key, at.field))?.length, 9, "'d' + 8 bytes of the binding");
    const dayEnd = Math.ceil((now + 60_000) / 86_400_000) * 86_400_000;
    assert.ok(Math.abs(Date.now() + (await client.pttl(at.key)) - dayEnd) < 5_000, 'bucket expires at the end of the expiry day');
    const done = await claim(ids, 'b1');
    assert.equal(done.kind === 'done' && done.cached?.toString(), 'cached answer');
    // A finish for a binding that does not hold the tokens changes nothing.
    assert.equal(await store.finish(ids, ids.map(() => now + 60_000), 'b9', undefined, 60_000), false);

    // All or nothing: one spent token refuses the pair, and the fresh one is left unclaimed.
    const fresh = hex();
    assert.equal((await claim([fresh, ids[1]!], 'b3')).kind, 'conflict');
    const f = store.spentLocation(fresh, now + 60_000);
    assert.equal(await client.hexists(f.key, f.field), 0);
    assert.deepEqual(await claim([fresh], 'b4'), { kind: 'claimed' });
    await store.release([fresh], [now + 60_000], 'b4', 'retryable');
    assert.equal((await claim([fresh], 'b5')).kind, 'conflict', 'retryable: only the same request');
    assert.deepEqual(await claim([fresh], 'b4'), { kind: 'claimed' });
    await store.release([fresh], [now + 60_000], 'b4', 'free');
    assert.deepEqual(await claim([fresh], 'b5'), { kind: 'claimed' });

    // A token of the old key shape is spent.
    const old = hex();
    await client.set(`llmtor:{rdm}:s:${old}`, `d|${'0'.repeat(64)}`, 'PX', 60_000);
    assert.equal((await claim([old], 'b6')).kind, 'conflict');

    // Rate limit: counted only for claims; a replay of a done request is still served.
    const limited = { permanent: hex(), transient: hex() };
    const lclaim = (spentIds: string[], binding: string) =>
      store.claim({ spentIds, expiresAt: [now + 60_000], binding, now, leaseMs: 30_000, pseudonym: limited, rateLimit: { limit: 2, windowMs: 60_000 } });
    const [t1, t2, t3] = [hex(), hex(), hex()];
    assert.equal((await lclaim([t1], 'l1')).kind, 'claimed');
    assert.equal((await lclaim([t1], 'l2')).kind, 'conflict');
    assert.equal((await lclaim([t2], 'l2')).kind, 'claimed');
    const rl = await lclaim([t3], 'l3');
    assert.ok(rl.kind === 'rate_limited' && rl.retryAfterMs > 0 && rl.retryAfterMs <= 60_000);
    const t3at = store.spentLocation(t3, now + 60_000);
    assert.equal(await client.hexists(t3at.key, t3at.field), 0, 'nothing claimed when rate limited');
    await store.finish([t1], [now + 60_000], 'l1', Buffer.from('first'), 60_000);
    const replay = await lclaim([t1], 'l1');
    assert.equal(replay.kind === 'done' && replay.cached?.toString(), 'first');

    // Blacklist (either part), checked before anything else; nothing claimed.
    await store.blacklistAdd({ kind: 'transient', pseudonym: pseudonym.transient });
    const t4 = hex();
    assert.equal((await claim([t4], 'b7')).kind, 'blacklisted');
    await store.blacklistRemove('transient', pseudonym.transient);
    await store.blacklistAdd({ kind: 'permanent', pseudonym: pseudonym.permanent });
    assert.equal((await claim([t4], 'b7')).kind, 'blacklisted');
    await store.blacklistRemove('permanent', pseudonym.permanent);
    assert.deepEqual(await claim([t4], 'b7'), { kind: 'claimed' });

    // Without abuse tokens: no pseudonym keys, no count.
    const t5 = hex();
    assert.deepEqual(await store.claim({ spentIds: [t5], expiresAt: [now + 60_000], binding: 'b8', now, leaseMs: 30_000, rateLimit: { limit: 1, windowMs: 60_000 } }), { kind: 'claimed' });
  });

  it('durable claims on one node: no replica confirms, so the claim is undone and reported unconfirmed', async () => {
    const store = new RedisRedemptionStore(client, 'llmtor:rdm:', 5_000, { replicas: 1, timeoutMs: 100 });
    const id = hex();
    const now = Date.now();
    const claim = (binding: string) => store.claim({ spentIds: [id], expiresAt: [now + 60_000], binding, now, leaseMs: 30_000 });
    const t0 = Date.now();
    assert.deepEqual(await claim('d1'), { kind: 'unconfirmed', released: false });
    assert.ok(Date.now() - t0 >= 2 * 100, 'waited for a replica (claim and undo)');
    const at = store.spentLocation(id, now + 60_000);
    assert.equal(await client.hexists(at.key, at.field), 0, 'undone on the primary');
    assert.equal((await claim('d2')).kind, 'unconfirmed', 'another request may claim it (and is refused the same way)');
  });
});
