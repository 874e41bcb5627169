/**
 * "Malicious operator": an operator that runs both the identity and the anonymous side
 * (hostileOperator.ts, in front of the REAL proxy) tries each linking trick of issue 11 on
 * the REAL client code; every test asserts that the client defeats it or refuses and says
 * why. The anonymous side is reached through a loopback SOCKS5 server (the client's real Tor
 * transport code), the identity side directly, as with `issuanceOverTor: false`.
 * docs/privacy.md has the table attack → defence → test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { challengeDigest, decodeToken, encodeTokenChallenge, formatWwwAuthenticate, fromBase64Url, MAX_KEYS_PER_PURPOSE, pinnedChallenge, tokenKeyId, type DirectoryKey } from '@llmtor/protocol';
import type * as LocalStackModule from '@llmtor/proxy/testing';
import type { LocalStack } from '@llmtor/proxy/testing';
import type * as ControllerModule from '../src/vscode/controller.js';
import { KeyConsistencyError } from '../src/core/keyConsistency.js';
import { ChallengeRefusedError, LlmTorClient } from '../src/core/llmtorClient.js';
import { DEFAULT_REFILL_POLICY } from '../src/core/refillPlan.js';
import { RefillScheduler } from '../src/core/refillScheduler.js';
import { clearnetTransport, torTransport } from '../src/core/transport.js';
import { MemorySecretStore, Wallet } from '../src/core/wallet.js';
import { startHostileOperator, variantKey, type HostileOperator } from './helpers/hostileOperator.js';
import { startSocksServer, type TestSocksServer } from './helpers/socksServer.js';
import { installVscodeStub } from './helpers/vscodeStub.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startLocalStack } = require('@llmtor/proxy/testing') as typeof LocalStackModule;

const H = 3_600_000;

/** Deterministic uniform [0,1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock and timer queue the test advances by hand (simulated hours in milliseconds of real time). */
class ManualClock {
  t = Date.now();
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private seq = 0;
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimer = (id: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  /** Runs every timer due up to `until` in order (awaiting each step's promise chain). */
  async runUntil(until: number, settle: () => Promise<void>): Promise<void> {
    for (let guard = 0; guard < 10_000; guard++) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = until;
  }
}

describe('malicious operator: the client defeats or refuses each linking trick', function () {
  this.timeout(120_000);
  let stack: LocalStack;
  let op: HostileOperator;
  let socks: TestSocksServer;
  let clock: ManualClock;
  let currentCredit: DirectoryKey;

  before(async () => {
    // Every test makes its own accounts from 127.0.0.1.
    stack = await startLocalStack({ config: { accounts: { accountCreationsPerIpPerMinute: 1000 } } });
    clock = new ManualClock();
    op = await startHostileOperator(stack.url, clock.now);
    socks = await startSocksServer();
    currentCredit = (await op.realDirectory())['token-keys'].find((k) => (k.purpose ?? 'credit') === 'credit')!;
  });

  after(async () => {
    await socks?.close();
    await op?.close();
    await stack?.stop();
  });

  beforeEach(() => {
    op.seen.length = 0;
    for (const k of Object.keys(op.hooks)) delete op.hooks[k as keyof typeof op.hooks];
  });

  function client(o: { issuerName?: string; batchSize?: number } = {}) {
    const secrets = new MemorySecretStore();
    return new LlmTorClient({
      issuerUrl: op.identityUrl,
      redemptionUrl: op.anonymousUrl,
      issuance: clearnetTransport(),
      tor: torTransport({ host: '127.0.0.1', port: socks.port }),
      wallet: new Wallet(secrets, { minAgeMs: 0, jitterMs: 0, now: clock.now }),
      secrets,
      batchSize: o.batchSize ?? 5,
      now: clock.now,
      ...(o.issuerName ? { issuerName: o.issuerName } : {}),
    });
  }

  async function funded(credits: number, o: { batchSize?: number } = {}) {
    const c = client(o);
    await c.createAccount();
    const res = await fetch(`${stack.url}/v1/admin/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ account_key: await c.accountKey(), credits }),
    });
    assert.equal(res.status, 201, await res.text());
    return c;
  }

  const issuances = () => op.seen.filter((s) => s.side === 'identity' && s.issued);

  it('per-user key: the client never asks the identity side which key to use; it issues under the one current public key', async () => {
    const c = await funded(10);
    // The identity side offers each account its own key; the anonymous directory is the honest one.
    op.hooks.identityDirectory = (real) => ({ ...real, 'token-keys': real['token-keys'].map((k) => ((k.purpose ?? 'credit') === 'credit' ? { ...k, 'token-key': variantKey(k['token-key'], 3) } : k)) });
    await c.refreshDirectory();
    await c.refill();
    assert.equal(op.seen.filter((s) => s.side === 'identity' && s.path.includes('issuer-directory')).length, 0, 'the identity side was never asked for a directory');
    const publicId = tokenKeyId(fromBase64Url(currentCredit['token-key'], 'k'));
    const { total } = await c.wallet.counts();
    assert.equal(total, 5);
    for (const t of await c.wallet.take(total)) assert.deepEqual(decodeToken(fromBase64Url(t.token, 't')).tokenKeyId, publicId, 'every token is under the public current key');
  });

  it('per-user key on the anonymous side: a key shown to one fetch and replaced at the next is an alarm, and issuance stops', async () => {
    const c = await funded(10);
    await c.refreshDirectory();
    // The next anonymous fetch shows another current credit key instead of the pinned one.
    op.hooks.anonymousDirectory = (real) => ({ ...real, 'token-keys': real['token-keys'].map((k) => ((k.purpose ?? 'credit') === 'credit' ? { ...k, 'token-key': variantKey(k['token-key'], 5) } : k)) });
    await assert.rejects(c.refreshDirectory(), (e: unknown) => e instanceof KeyConsistencyError && /is gone although it is valid/.test(e.message));
    await assert.rejects(c.refill(), (e: unknown) => e instanceof KeyConsistencyError && /Issuance is stopped/.test(e.message), 'the alarm sticks: no issuance even under the earlier pins');
    assert.equal(issuances().length, 0, 'no issuance request reached the operator');
  });

  it('directory with too many keys: refused with the bound, nothing issued', async () => {
    const c = await funded(10);
    op.hooks.anonymousDirectory = (real) => ({
      ...real,
      'token-keys': [...real['token-keys'], ...Array.from({ length: MAX_KEYS_PER_PURPOSE }, (_, i) => 3 + 2 * i).map((e, i) => ({ ...currentCredit, 'token-key': variantKey(currentCredit['token-key'], e), 'not-before': (currentCredit['not-before'] ?? 0) - (i + 1) * 60 }))],
    });
    await assert.rejects(c.refreshDirectory(), new RegExp(`lists ${MAX_KEYS_PER_PURPOSE + 1} credit keys; at most ${MAX_KEYS_PER_PURPOSE}`));
    await assert.rejects(c.refill(), KeyConsistencyError);
    assert.equal(issuances().length, 0);
  });

  it('key id whose public key changes: another key behind a pinned truncated key id is an alarm', async () => {
    const c = await funded(10);
    await c.refreshDirectory();
    const trunc = tokenKeyId(fromBase64Url(currentCredit['token-key'], 'k')).at(-1);
    let e = 3;
    while (tokenKeyId(fromBase64Url(variantKey(currentCredit['token-key'], e), 'k')).at(-1) !== trunc) e += 2;
    const impostor = variantKey(currentCredit['token-key'], e);
    op.hooks.anonymousDirectory = (real) => ({ ...real, 'token-keys': [...real['token-keys'], { ...currentCredit, 'token-key': impostor, 'not-before': (currentCredit['not-before'] ?? 0) + 1 }] });
    await assert.rejects(c.refreshDirectory(), /different public key now answers to truncated key id/);
    await assert.rejects(c.refill(), /Issuance is stopped/);
    assert.equal(issuances().length, 0);
  });

  it('per-fetch challenge with redemption_context and origin in a 401: refused and reported, tokens kept, never learned', async () => {
    const c = await funded(10);
    await c.refreshDirectory();
    await c.refill();
    const name = (await op.realDirectory())['issuer-name']!;
    // Every token in the wallet is bound to the client's own challenge, nothing the server chose.
    const pinned = challengeDigest(pinnedChallenge(name));
    const tokens = await c.wallet.take(5);
    for (const t of tokens) assert.deepEqual(decodeToken(fromBase64Url(t.token, 't')).challengeDigest, pinned);
    await c.wallet.putBack(tokens);
    op.hooks.anonymous = (req) => {
      if (req.path !== '/v1/chat/completions') return undefined;
      const tagged = encodeTokenChallenge({ tokenType: 2, issuerName: new TextEncoder().encode(name), redemptionContext: new Uint8Array(randomBytes(32)), originInfo: new TextEncoder().encode('tag.example') });
      return { status: 401, headers: { 'www-authenticate': formatWwwAuthenticate({ challenge: tagged, tokenKey: fromBase64Url(currentCredit['token-key'], 'k') }) }, body: JSON.stringify({ error: { code: 'credits_required', message: 'send tokens for this challenge' } }) };
    };
    const model = (await c.models(true))[0]!.id;
    const before = op.seen.length;
    await assert.rejects(c.send(model, [{ role: 'user', content: 'hi' }]), (e: unknown) => e instanceof ChallengeRefusedError && /redemption context, origin info/.test(e.message));
    assert.equal((await c.wallet.counts()).total, 5, 'the tokens are back in the wallet');
    assert.equal(op.seen.slice(before).filter((s) => s.side === 'identity').length, 0, 'no identity call followed the 401');
  });

  it('no issuer name published: the client refuses to make tokens rather than probe for a 401 challenge', async () => {
    const c = await funded(10);
    op.hooks.anonymousDirectory = (real) => {
      const { 'issuer-name': _drop, ...rest } = real;
      return rest;
    };
    await c.refreshDirectory();
    await assert.rejects(c.refill(), (e: unknown) => e instanceof ChallengeRefusedError && /llmtor.issuerName/.test(e.message));
    assert.equal(op.seen.filter((s) => s.side === 'anonymous' && s.method === 'POST').length, 0, 'no token-less probe of the chat endpoint');
    assert.equal(issuances().length, 0);
  });

  it('issuance timing right after a send: wake times do not depend on sends, and every batch has the fixed size', async () => {
    const policy = { ...DEFAULT_REFILL_POLICY, batchSize: 6, lowWater: 4, slackMax: 2 };
    async function run(sendAt: number[]) {
      const c = await funded(40, { batchSize: policy.batchSize });
      await c.refreshDirectory();
      const t0 = clock.t;
      const errors: unknown[] = [];
      const sch = new RefillScheduler({ client: c, now: clock.now, rng: rng(42), policy, setTimer: clock.setTimer, clearTimer: clock.clearTimer, onError: (e) => errors.push(e) });
      await sch.start();
      const wakes: number[] = [];
      const model = (await c.models(true))[0]!.id;
      const sends: number[] = [];
      const from = op.seen.length;
      for (let h = 1; h <= 24; h++) {
        await clock.runUntil(t0 + h * H, async () => {
          await sch.whenIdle();
          if (sch.nextRefillAt !== undefined && wakes.at(-1) !== sch.nextRefillAt - t0) wakes.push(sch.nextRefillAt - t0);
        });
        if (sendAt.includes(h) && (await c.wallet.counts()).ready > 0) {
          await c.send(model, [{ role: 'user', content: `chat at ${h}` }]);
          sends.push(clock.t);
        }
      }
      sch.stop();
      assert.deepEqual(errors, [], 'no scheduled step failed');
      return { wakes, sends, issued: op.seen.slice(from).filter((s) => s.side === 'identity' && s.issued?.purpose === 'credit') };
    }
    const quiet = await run([]);
    const busy = await run([1, 2, 3, 5, 8, 9, 13, 14, 15, 16, 20]);
    assert.ok(busy.sends.length >= 5, `sends happened (${busy.sends.length})`);
    assert.deepEqual(busy.wakes, quiet.wakes, 'the same wake times with and without chats');
    assert.ok(busy.issued.length >= 2, `refills happened (${busy.issued.length})`);
    for (const s of busy.issued) assert.equal(s.issued!.count, policy.batchSize, 'a fixed batch, never the amount just spent');
    
  });

  it('revoke → re-issue: the new transient token comes at a later scheduled wake, at least revokeGap after, on the identity channel only', async () => {
    const c = await funded(20);
    await c.refreshDirectory();
    await c.refill();
    const policy = { ...DEFAULT_REFILL_POLICY, batchSize: 5 };
    const errors: unknown[] = [];
    const sch = new RefillScheduler({ client: c, now: clock.now, rng: rng(7), policy, setTimer: clock.setTimer, clearTimer: clock.clearTimer, onError: (e) => errors.push(e) });
    const socksBefore = socks.records.length;
    const revokeAt = clock.t;
    const from = op.seen.length;
    await c.revokeTransient();
    const revoke = op.seen.slice(from).find((s) => s.path === '/v1/abuse/revoke')!;
    assert.equal(revoke.side, 'anonymous');
    assert.ok(socks.records.length > socksBefore, 'the revocation went through the SOCKS (Tor) transport');
    assert.equal((await c.wallet.abuseTokens()).transient, undefined, 'nothing re-issued at revocation time');
    await sch.start();
    await clock.runUntil(revokeAt + 12 * H, () => sch.whenIdle());
    sch.stop();
    assert.deepEqual(errors, []);
    const reissue = op.seen.slice(from).filter((s) => s.issued?.purpose === 'transient');
    assert.equal(reissue.length, 1, 'one new transient token within 12 h');
    assert.equal(reissue[0]!.side, 'identity');
    assert.ok(reissue[0]!.at - revokeAt >= policy.revokeGapMs, `re-issued ${(reissue[0]!.at - revokeAt) / 60_000} min after the revocation`);
    assert.ok((await c.wallet.abuseTokens()).transient);
  });

  it('startup beacon: activation (the real Controller) makes no identity call; an explicit refresh does', async () => {
    const manifest = JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as { activationEvents: string[] };
    assert.ok(!manifest.activationEvents.some((e) => e === '*' || e === 'onStartupFinished'), `activation only on the view and commands (got ${manifest.activationEvents.join(', ')})`);
    const funded1 = await funded(5);
    const key = (await funded1.accountKey())!;
    installVscodeStub({ 'llmtor.issuerUrl': op.identityUrl, 'llmtor.redemptionUrl': op.anonymousUrl });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Controller } = require('../src/vscode/controller.js') as typeof ControllerModule;
    const secrets = new MemorySecretStore();
    await secrets.store('llmtor.accountKey', key);
    const none = () => ({ dispose() {} });
    const tor = { status: { kind: 'ready' }, onDidChange: none, ensureStarted: async () => ({ host: '127.0.0.1', port: socks.port }), socks: () => ({ host: '127.0.0.1', port: socks.port }), restart: async () => undefined, dispose() {} };
    const ctx = { secrets, globalState: { get: () => undefined, update: async () => undefined }, subscriptions: [] };
    const ctl = new Controller(ctx as never, tor as never);
    op.seen.length = 0;
    await ctl.start();
    // Activation's own work (Tor, the model list) has finished once the models arrived; then a little longer.
    for (let i = 0; i < 100 && !op.seen.some((s) => s.path === '/v1/models'); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(op.seen.filter((s) => s.side === 'identity').length, 0, `no identity call at activation (saw ${JSON.stringify(op.seen.filter((s) => s.side === 'identity').map((s) => s.path))})`);
    assert.ok(op.seen.some((s) => s.side === 'anonymous' && s.path === '/v1/models'), 'the model list came over Tor');
    await ctl.refresh();
    assert.ok(op.seen.some((s) => s.side === 'identity' && s.path === '/v1/account' && s.account === key), 'positive control: an explicit refresh is an identity call the operator sees');
    ctl.dispose();
  });

  it('no abuse tokens for an account without credit', async () => {
    const c = client();
    await c.createAccount();
    await c.refreshDirectory();
    const r = await c.refill();
    assert.equal(r.issued, 0);
    assert.equal(issuances().length, 0, 'no issuance request at all');
    assert.deepEqual(await c.wallet.abuseTokens(), {});
  });
});
