/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config.js';
import { checkJournal, type JournalEntry } from '../../src/ledger/journal.js';
import { tempDir } from '../support/keyFiles.js';

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('issuance: configuration', () => {
  it('works with no settings at all (embedded demo defaults)', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(c.roles, ['issuance', 'redemption']);
    assert.deepEqual(c.redis.issuance, { tls: false });
    assert.equal(c.keys.dir, undefined);
  });

  it('reads the environment, with per-role Redis URLs falling back to REDIS_URL', () => {
    const c = loadConfig({ env: { LLMTOR_ROLES: 'redemption', REDIS_URL: 'redis://a:6379', ISSUANCE_REDIS_URL: 'redis://b:6379', PORT: '9000', LLMTOR_ACCOUNT_PEPPER: 'p'.repeat(32) } });
    assert.deepEqual(c.roles, ['redemption']);
    assert.equal(c.redis.issuance.url, 'redis://b:6379');
    assert.equal(c.redis.redemption.url, 'redis://a:6379');
    assert.equal(c.listen.port, 9000);
  });

  it('names every wrong setting and its environment variable in one error', () => {
    const p = problems(() =>
      loadConfig({ env: { PORT: 'eighty', LLMTOR_ROLES: 'issuance,billing', ADMIN_TOKEN: 'short', REDIS_URL: 'http://x', LLMTOR_PACKS: '[{"id":"a","credits":0,"amount":1,"currency":"EUR","name":"x"}]' } }),
    );
    const text = p.join('\n');
    assert.match(text, /PORT: must be an integer/);
    assert.match(text, /setting roles\.1 \(env LLMTOR_ROLES\)/);
    assert.match(text, /setting adminToken \(env ADMIN_TOKEN\): must be at least 32 characters/);
    assert.match(text, /setting redis\.issuance\.url \(env REDIS_URL or ISSUANCE_REDIS_URL\): must be a redis:\/\//);
    assert.match(text, /setting packs\.0\.credits/);
    assert.match(text, /setting packs\.0\.currency/);
    assert.ok(!text.includes('short'), 'secret values are not echoed');
  });

  it('requires a pepper when accounts live in Redis, and a webhook secret with a Stripe key', () => {
    const text = problems(() => loadConfig({ env: { REDIS_URL: 'redis://r:6379', STRIPE_SECRET_KEY: 'sk_test_x' } })).join('\n');
    assert.match(text, /accounts\.pepper \(env LLMTOR_ACCOUNT_PEPPER\): required when account data is in Redis/);
    assert.match(text, /stripe\.webhookSecret \(env STRIPE_WEBHOOK_SECRET\): required with stripe\.secretKey/);
  });

  it('reads an optional JSON file, overridden by the environment, and rejects unknown settings', () => {
    const dir = tempDir('llmtor-config-');
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ issuerName: 'from-file', issuance: { maxBatchSize: 10 } }));
    const c = loadConfig({ env: { LLMTOR_CONFIG_FILE: file, LLMTOR_MAX_BATCH: '20' } });
    assert.equal(c.issuerName, 'from-file');
    assert.equal(c.issuance.maxBatchSize, 20);
    writeFileSync(file, JSON.stringify({ issuance: { maxBatchSise: 10 } }));
    assert.match(problems(() => loadConfig({ env: { LLMTOR_CONFIG_FILE: file } })).join('\n'), /Unrecognized key/);
    assert.match(problems(() => loadConfig({ env: { LLMTOR_CONFIG_FILE: join(dir, 'missing.json') } })).join('\n'), /file not found/);
  });

  it('reads Sentinel and Cluster topologies per role; a role with its own variables reads only those', () => {
    const c = loadConfig({
      env: {
        REDIS_SENTINELS: 'sentinel-0.redis:26379, sentinel-1.redis:26379,[fd00::1]:26379',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
        REDIS_PASSWORD: 'data-secret',
        REDIS_DB: '2',
        REDEMPTION_REDIS_CLUSTER_NODES: 'redis-0:6379,redis-1:6379',
        REDEMPTION_REDIS_TLS: 'true',
        LLMTOR_ACCOUNT_PEPPER: 'p'.repeat(32),
      },
    });
    assert.deepEqual(c.redis.issuance, {
      sentinels: [
        { host: 'sentinel-0.redis', port: 26379 },
        { host: 'sentinel-1.redis', port: 26379 },
        { host: 'fd00::1', port: 26379 },
      ],
      sentinelName: 'mymaster',
      sentinelPassword: 'sentinel-secret',
      password: 'data-secret',
      db: 2,
      tls: false,
    });
    // REDEMPTION_REDIS_* set: the shared REDIS_* (Sentinel, password, db) do not apply to that role.
    assert.deepEqual(c.redis.redemption, { clusterNodes: [{ host: 'redis-0', port: 6379 }, { host: 'redis-1', port: 6379 }], tls: true });
  });

  it('env that names a server replaces the file\'s target of that role; other env settings are merged into it', () => {
    const dir = tempDir('llmtor-config-');
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ redis: { issuance: { url: 'rediss://file:6380', tlsCaFile: '/etc/ca.pem' }, redemption: { clusterNodes: ['a:1', 'b:2'] } } }));
    const c = loadConfig({ env: { LLMTOR_CONFIG_FILE: file, ISSUANCE_REDIS_CLUSTER_NODES: 'c:3', REDEMPTION_REDIS_PASSWORD: 'pw', LLMTOR_ACCOUNT_PEPPER: 'p'.repeat(32) } });
    assert.deepEqual(c.redis.issuance, { clusterNodes: [{ host: 'c', port: 3 }], tls: false });
    assert.deepEqual(c.redis.redemption, { clusterNodes: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }], password: 'pw', tls: false });
  });

  it('explains every wrong Redis setting, naming its variables, without echoing secrets', () => {
    const text = (env: NodeJS.ProcessEnv) => problems(() => loadConfig({ env: { LLMTOR_ACCOUNT_PEPPER: 'p'.repeat(32), ...env } })).join('\n');
    assert.match(text({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:6379' }), /setting redis\.issuance\.clusterNodes \(env REDIS_CLUSTER_NODES or ISSUANCE_REDIS_CLUSTER_NODES\): set only one of url, sentinels or clusterNodes \(url is set too\)/);
    assert.match(text({ REDIS_SENTINELS: 's:26379' }), /setting redis\.issuance\.sentinelName \(env REDIS_SENTINEL_NAME or ISSUANCE_REDIS_SENTINEL_NAME\): required with sentinels/);
    assert.match(text({ REDIS_SENTINEL_NAME: 'mymaster', REDIS_URL: 'redis://a:6379' }), /redis\.issuance\.sentinelName .*only used with sentinels/);
    assert.match(text({ ISSUANCE_REDIS_CLUSTER_NODES: 'redis-0,redis-1:99999' }), /setting redis\.issuance\.clusterNodes\.0 \(env .*ISSUANCE_REDIS_CLUSTER_NODES\): must be host:port/);
    assert.match(text({ ISSUANCE_REDIS_CLUSTER_NODES: 'redis-0,redis-1:99999' }), /clusterNodes\.1 .*must be host:port/);
    assert.match(text({ REDIS_CLUSTER_NODES: 'a:1', REDIS_DB: '3' }), /redis\.issuance\.db .*a Redis Cluster has only database 0/);
    assert.match(text({ REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'hunter2-secret' }), /redis\.issuance\.password .*put the credentials in the URL/);
    assert.match(text({ REDIS_URL: 'redis://a:6379', REDIS_TLS: 'yes' }), /redis\.issuance\.tls .*use a rediss:\/\/ URL/);
    assert.match(text({ REDIS_URL: 'redis://a:6379', REDIS_TLS_CA_FILE: '/ca.pem' }), /redis\.issuance\.tlsCaFile .*needs TLS/);
    assert.match(text({ REDIS_PASSWORD: 'hunter2-secret' }), /redis\.issuance\.password .*has no effect without url, sentinels or clusterNodes/);
    assert.match(text({ REDIS_TLS: 'maybe' }), /REDIS_TLS: must be true or false/);
    assert.match(
      text({ REDIS_URL: 'redis://a:6379', ISSUANCE_REDIS_PASSWORD: 'hunter2-secret' }),
      /ISSUANCE_REDIS_\* variables are set, so the issuance role reads only those and ignores REDIS_URL; also set ISSUANCE_REDIS_URL/,
    );
    for (const env of [{ REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'hunter2-secret' }, { REDIS_PASSWORD: 'hunter2-secret' }]) assert.ok(!text(env).includes('hunter2'));
    // A valid Sentinel setting with a pepper has no problems, and without one the pepper is asked for.
    assert.equal(text({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }), '');
    assert.match(problems(() => loadConfig({ env: { REDIS_CLUSTER_NODES: 'a:1' } })).join('\n'), /accounts\.pepper .*required when account data is in Redis/);
  });

  it('checks the sweeper timing against the takeover time and the idempotency window', () => {
    assert.match(problems(() => loadConfig({ env: { LLMTOR_ABANDONED_AFTER_MS: '20000' } })).join('\n'), /issuance\.abandonedAfterMs \(env LLMTOR_ABANDONED_AFTER_MS\): must be longer than issuance\.pendingTakeoverMs/);
    assert.match(problems(() => loadConfig({ env: {}, overrides: { issuance: { idempotencyTtlSeconds: 120, abandonedAfterMs: 200_000 } } })).join('\n'), /must be shorter than issuance\.idempotencyTtlSeconds/);
    assert.equal(loadConfig({ env: { LLMTOR_SWEEP_INTERVAL_MS: '5000' } }).issuance.sweepIntervalMs, 5000);
  });
});

describe('issuance: ledger journal check', () => {
  const e = (delta: number, balance: number, type: JournalEntry['type'] = 'grant'): JournalEntry => ({ id: String(Math.random()), type, delta, balance, at: 0, ref: 'r' });
  it('accepts a journal whose running sum matches every entry and the stored balance', () => {
    assert.ok(checkJournal([e(10, 10), e(-3, 7, 'issue'), e(1, 8, 'issue_refund')], 8).ok);
  });
  it('finds a wrong recorded balance, a negative balance and a stored balance that differs', () => {
    assert.equal(checkJournal([e(10, 10), e(-3, 6, 'issue')], 7).problems.length, 1);
    assert.ok(checkJournal([e(-1, -1, 'issue')], -1).problems.some((p) => p.includes('negative')));
    assert.ok(checkJournal([e(5, 5)], 4).problems.some((p) => p.includes('stored balance 4')));
  });
});
