import assert from 'node:assert/strict';
import { epochOf, type KeyMetadata } from '@llmtor/protocol';
import { MAX_KEYS_PER_PURPOSE } from '@llmtor/protocol';
import { issuerPolicy, parseDuration, parseRotateRequest, plan, takenTruncatedIds, type IssuerSpecInput, type ObservedKey, type Plan } from '../src/index.js';

const H = 3_600_000;
const D = 24 * H;

/** Applies a plan to a key list the way the reconciler does (fake key ids; no crypto: the planner never looks at keys). */
function apply(keys: ObservedKey[], p: Plan, seq: { n: number }): ObservedKey[] {
  let out = keys.filter((k) => !p.remove.includes(k.meta.keyId) && !p.withdraw.includes(k.meta.keyId) && !p.revoke.includes(k.meta.keyId));
  out = out.map((k) => {
    const r = p.retire.find((x) => x.keyId === k.meta.keyId);
    return r ? { ...k, meta: { ...k.meta, issuanceEnd: new Date(r.issuanceEnd).toISOString() } } : k;
  });
  for (const t of p.generate) {
    const keyId = (seq.n++).toString(16).padStart(64, '0');
    const meta: KeyMetadata = { keyId, purpose: t.purpose, notBefore: new Date(t.notBefore).toISOString(), issuanceEnd: new Date(t.issuanceEnd).toISOString(), redemptionEnd: new Date(t.redemptionEnd).toISOString(), publicKey: '' };
    if (t.epoch) meta.epoch = t.epoch;
    out.push({ meta, kek: { provider: 'local', keyId: 'kek' } });
  }
  return out;
}

const at = (s: string) => Date.parse(s);
const signing = (keys: ObservedKey[], purpose: string, now: number) => keys.filter((k) => k.meta.purpose === purpose && Date.parse(k.meta.notBefore) <= now && now < Date.parse(k.meta.issuanceEnd));

describe('plan(): the pure key schedule', () => {
  const spec: IssuerSpecInput = { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '720h', publishAhead: '24h' } };
  const policy = issuerPolicy('main', spec);

  it('first reconcile: one credit, one permanent and this month\'s transient key, all signing at once', () => {
    const now = at('2026-03-10T12:00:00Z');
    const p = plan({ policy, keys: [], now });
    assert.deepEqual(p.generate.map((g) => [g.purpose, g.reason]), [['credit', 'bootstrap'], ['permanent', 'bootstrap'], ['transient', 'epoch']]);
    const credit = p.generate[0]!;
    assert.equal(credit.notBefore, now);
    assert.equal(credit.issuanceEnd, now + 744 * H);
    assert.equal(credit.redemptionEnd, now + 744 * H + 720 * H);
    const tr = p.generate[2]!;
    assert.equal(tr.epoch, '2026-03');
    assert.equal(tr.notBefore, at('2026-03-01T00:00:00Z'));
    assert.equal(tr.issuanceEnd, at('2026-04-01T00:00:00Z'));
    assert.equal(tr.redemptionEnd, at('2026-04-01T00:00:00Z') + 168 * H);
    assert.equal(p.nextRotation, now + 720 * H);
  });

  it('is idempotent: planning again on the result does nothing until the next instant it names', () => {
    const seq = { n: 1 };
    const now = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now }), seq);
    const again = plan({ policy, keys, now });
    assert.deepEqual([again.generate, again.remove, again.retire, again.rewrap], [[], [], [], []]);
    assert.ok(again.wakeAt! > now);
    const justBefore = plan({ policy, keys, now: again.wakeAt! - 1 });
    assert.deepEqual(justBefore.generate, []);
  });

  it('publishes the successor publishAhead before it takes over, never later', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    const publishAt = t0 + 720 * H - 24 * H;
    assert.deepEqual(plan({ policy, keys, now: publishAt - 1 }).generate.filter((g) => g.purpose === 'credit'), []);
    const p = plan({ policy, keys, now: publishAt });
    const succ = p.generate.find((g) => g.purpose === 'credit')!;
    assert.equal(succ.reason, 'scheduled');
    assert.equal(succ.notBefore, t0 + 720 * H, 'takes over exactly at the end of the period');
    assert.equal(p.nextRotation, t0 + 720 * H);
  });

  it('an operator that was down past the period publishes at once and still leaves no gap', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    const late = t0 + 730 * H; // the old key still signs until t0 + 744h
    const p = plan({ policy, keys, now: late });
    const succ = p.generate.find((g) => g.purpose === 'credit')!;
    assert.equal(succ.notBefore, late + 24 * H > t0 + 744 * H ? t0 + 744 * H : late + 24 * H);
    const afterAll = apply(keys, p, seq);
    for (let t = late; t < late + 48 * H; t += H) assert.ok(signing(afterAll, 'credit', t).length >= 1, `a credit key signs at ${new Date(t).toISOString()}`);
  });

  it('removes a key only once its redemption window is over', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    const firstCredit = keys.find((k) => k.meta.purpose === 'credit')!;
    const end = Date.parse(firstCredit.meta.redemptionEnd);
    let k2 = keys;
    for (let t = t0; t < end; t += 12 * H) {
      const p = plan({ policy, keys: k2, now: t });
      assert.ok(!p.remove.includes(firstCredit.meta.keyId), `not removed at ${new Date(t).toISOString()}`);
      k2 = apply(k2, p, seq);
    }
    assert.ok(plan({ policy, keys: k2, now: end }).remove.includes(firstCredit.meta.keyId));
  });

  it('rotate=now is first rewritten to a fixed time; a time is carried out once, a future time is scheduled', () => {
    const seq = { n: 1 };
    const now = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now }), seq);
    const p1 = plan({ policy, keys, now, rotateRequest: 'now' });
    assert.equal(p1.rewriteRotateAnnotation, new Date(now).toISOString());
    const req = p1.rewriteRotateAnnotation!;
    const p2 = plan({ policy, keys, now: now + 1000, rotateRequest: req });
    const forced = p2.generate.find((g) => g.reason === 'forced')!;
    assert.equal(forced.notBefore, now + 1000 + 24 * H, 'published before use');
    assert.equal(p2.handledRotation, req);
    const oldCredit = keys.find((k) => k.meta.purpose === 'credit')!;
    assert.deepEqual(p2.retire, [{ keyId: oldCredit.meta.keyId, issuanceEnd: forced.notBefore }]);
    const k3 = apply(keys, p2, seq);
    const p3 = plan({ policy, keys: k3, now: now + 2000, rotateRequest: req, handledRotation: req });
    assert.deepEqual(p3.generate, [], 'carried out once');
    const future = new Date(now + 5 * D).toISOString();
    const p4 = plan({ policy, keys: k3, now: now + 3000, rotateRequest: future, handledRotation: req });
    assert.deepEqual(p4.generate, []);
    assert.ok(p4.wakeAt! <= now + 5 * D, 'the scheduled time wakes the operator');
    const p5 = plan({ policy, keys: k3, now: now + 5 * D, rotateRequest: future, handledRotation: req });
    assert.equal(p5.generate.filter((g) => g.reason === 'forced').length, 1);
    assert.match(plan({ policy, keys: k3, now, rotateRequest: 'tomorrow' }).invalidRotateRequest!, /neither "now", "compromised" nor an RFC 3339 time/);
  });

  it('parses rotation requests (table)', () => {
    const t = '2026-03-10T12:00:00Z';
    const rows: [string, ReturnType<typeof parseRotateRequest>][] = [
      ['now', { kind: 'now', emergency: false }],
      [' NOW ', { kind: 'now', emergency: false }],
      [t, { kind: 'at', at: at(t), emergency: false }],
      ['compromised', { kind: 'now', emergency: true }],
      [`compromised:${t}`, { kind: 'at', at: at(t), emergency: true }],
      ['compromised:now', { kind: 'invalid' }],
      ['tomorrow', { kind: 'invalid' }],
      ['2026-03-10', { kind: 'invalid' }],
    ];
    for (const [input, want] of rows) assert.deepEqual(parseRotateRequest(input), want, input);
  });

  /** Carries out rotation requests one after the other (each rewritten, then done), as the reconciler does. */
  function rotate(keys: ObservedKey[], now: number, value: string, seq: { n: number }, handled?: string, revokeRedemption = false): { keys: ObservedKey[]; p: Plan; handled: string | undefined } {
    const rewrite = plan({ policy, keys, now, rotateRequest: value, handledRotation: handled }).rewriteRotateAnnotation!;
    const p = plan({ policy, keys, now, rotateRequest: rewrite, handledRotation: handled, revokeRedemption });
    return { keys: apply(keys, p, seq), p, handled: p.handledRotation ?? handled };
  }
  const published = (keys: ObservedKey[], purpose: string) => keys.filter((k) => k.meta.purpose === purpose).length;

  it('a repeated rotate=now replaces the published successor instead of adding one, and leaves no gap', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    let keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    let handled: string | undefined;
    const firstCredit = keys.find((k) => k.meta.purpose === 'credit')!.meta.keyId;
    let r = rotate(keys, t0 + 60_000, 'now', seq, handled);
    keys = r.keys;
    handled = r.handled;
    assert.equal(published(keys, 'credit'), 2);
    const successor1 = r.p.generate.find((g) => g.reason === 'forced')!;
    for (let i = 1; i <= 4; i++) {
      r = rotate(keys, t0 + 60_000 + i * 21_000, 'now', seq, handled);
      keys = r.keys;
      handled = r.handled;
      assert.equal(r.p.withdraw.length, 1, 'the pending successor is withdrawn');
      assert.equal(published(keys, 'credit'), 2, `after ${i + 1} requests: the old key and one successor`);
    }
    const last = r.p.generate.find((g) => g.reason === 'forced')!;
    assert.equal(last.notBefore, t0 + 60_000 + 4 * 21_000 + 24 * H, 'published publishAhead before it signs');
    assert.ok(last.notBefore > successor1.notBefore);
    const old = keys.find((k) => k.meta.keyId === firstCredit)!;
    assert.equal(Date.parse(old.meta.issuanceEnd), last.notBefore, 'the old key signs until the replacement takes over');
    for (let t = t0; t < last.notBefore + 2 * H; t += 30 * 60_000) assert.ok(signing(keys, 'credit', t).length >= 1, `a credit key signs at ${new Date(t).toISOString()}`);
  });

  it('rotate=now while a scheduled successor is published replaces it', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    let keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    const publishAt = t0 + 720 * H - 24 * H;
    keys = apply(keys, plan({ policy, keys, now: publishAt }), seq);
    assert.equal(published(keys, 'credit'), 2);
    const r = rotate(keys, publishAt + H, 'now', seq);
    assert.equal(r.p.withdraw.length, 1);
    assert.equal(published(r.keys, 'credit'), 2);
    for (let t = publishAt; t < publishAt + 72 * H; t += H) assert.ok(signing(r.keys, 'credit', t).length >= 1);
  });

  it('rotate=now while paused is reported, not silently kept; a request already carried out is not', () => {
    const seq = { n: 1 };
    const now = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now }), seq);
    const paused = issuerPolicy('main', { ...spec, paused: true });
    assert.match(plan({ policy: paused, keys, now, rotateRequest: 'now' }).pausedRotateRequest!, /"now" is not carried out while spec.paused is true/);
    assert.match(plan({ policy: paused, keys, now, rotateRequest: 'compromised' }).pausedRotateRequest!, /"compromised"/);
    const t = new Date(now - 1000).toISOString();
    assert.match(plan({ policy: paused, keys, now, rotateRequest: t }).pausedRotateRequest!, /not carried out/);
    assert.equal(plan({ policy: paused, keys, now, rotateRequest: t, handledRotation: t }).pausedRotateRequest, undefined);
    assert.equal(plan({ policy: paused, keys, now, rotateRequest: new Date(now + H).toISOString() }).pausedRotateRequest, undefined, 'a future time is not due yet');
  });

  it('rotate=compromised: new credit, permanent and epoch keys sign at once, the old ones stop signing now and keep verifying', () => {
    const seq = { n: 1 };
    const t0 = at('2026-03-10T12:00:00Z');
    let keys = apply([], plan({ policy, keys: [], now: t0 }), seq);
    keys = apply(keys, plan({ policy, keys, now: t0 + 720 * H - 24 * H }), seq); // a published credit successor too
    const now = t0 + 700 * H;
    const rewrite = plan({ policy, keys, now, rotateRequest: 'compromised' }).rewriteRotateAnnotation!;
    assert.equal(rewrite, `compromised:${new Date(now).toISOString()}`);
    const before = keys;
    const r = rotate(keys, now, 'compromised', seq);
    assert.deepEqual(r.p.generate.map((g) => [g.purpose, g.reason, g.notBefore]).sort(), [['credit', 'emergency', now], ['permanent', 'emergency', now], ['transient', 'emergency', now]].sort());
    assert.equal(r.p.withdraw.length, 1, 'the published credit successor never signed: withdrawn');
    for (const k of before) {
      const after = r.keys.find((x) => x.meta.keyId === k.meta.keyId);
      if (!after) continue;
      assert.ok(Date.parse(after.meta.issuanceEnd) <= now, `${k.meta.purpose} stops signing`);
      assert.equal(after.meta.redemptionEnd, k.meta.redemptionEnd, 'its tokens stay redeemable');
    }
    for (const purpose of ['credit', 'permanent', 'transient']) assert.equal(signing(r.keys, purpose, now).length, 1, `one ${purpose} key signs: the new one`);
    assert.equal(r.p.revoke.length, 0);
    assert.deepEqual(plan({ policy, keys: r.keys, now: now + 1000, rotateRequest: `compromised:${new Date(now).toISOString()}`, handledRotation: r.handled }).generate, [], 'carried out once');
  });

  it('rotate=compromised with revoke-redemption also stops the old keys verifying (removed at once)', () => {
    const seq = { n: 1 };
    const now = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now: now - 2 * D }), seq);
    const r = rotate(keys, now, 'compromised', seq, undefined, true);
    assert.deepEqual(r.p.revoke.sort(), keys.map((k) => k.meta.keyId).sort());
    assert.equal(r.keys.length, 3);
    assert.ok(r.keys.every((k) => !keys.some((o) => o.meta.keyId === k.meta.keyId)));
  });

  it(`never more than ${MAX_KEYS_PER_PURPOSE} keys of a purpose: rotation requests beyond the bound are refused`, () => {
    const seq = { n: 1 };
    let now = at('2026-03-10T12:00:00Z');
    let keys = apply([], plan({ policy, keys: [], now }), seq);
    let handled: string | undefined;
    let refused: string | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      now += 25 * H; // each successor signs before the next request: nothing to replace
      keys = apply(keys, plan({ policy, keys, now }), seq);
      const r = rotate(keys, now, 'now', seq, handled);
      keys = r.keys;
      handled = r.handled;
      refused = r.p.refusedRotateRequest;
      assert.ok(published(keys, 'credit') <= MAX_KEYS_PER_PURPOSE - 2 + 1);
    }
    assert.match(refused!, /refused: \d+ credit keys are still published/);
    // An emergency rotation still goes through (one slot more), up to the bound.
    now += 1000;
    const e = rotate(keys, now, 'compromised', seq, handled);
    assert.equal(e.p.refusedRotateRequest, undefined);
    assert.ok(published(e.keys, 'credit') <= MAX_KEYS_PER_PURPOSE);
  });

  it('paused: nothing generated, removed or re-wrapped', () => {
    const paused = issuerPolicy('main', { ...spec, paused: true });
    const p = plan({ policy: paused, keys: [], now: at('2026-03-10T12:00:00Z'), rotateRequest: '2026-03-01T00:00:00Z' });
    assert.deepEqual([p.generate, p.remove, p.retire, p.rewrap, p.handledRotation], [[], [], [], [], undefined]);
  });

  it('re-wraps live envelope files whose key-encryption key is not the current one', () => {
    const seq = { n: 1 };
    const now = at('2026-03-10T12:00:00Z');
    const keys = apply([], plan({ policy, keys: [], now }), seq);
    const p = plan({ policy, keys, now, currentKek: { provider: 'azure-keyvault', keyId: 'https://v/keys/k/2' } });
    assert.equal(p.rewrap.length, 3);
    assert.deepEqual(plan({ policy, keys, now, currentKek: { provider: 'local', keyId: 'kek' } }).rewrap, []);
  });

  it('a year in fast-forward: always a signing credit and epoch key, successors published ahead, one transient key per month', () => {
    const seq = { n: 1 };
    let now = at('2026-01-15T09:30:00Z');
    let keys: ObservedKey[] = [];
    const epochsSeen = new Set<string>();
    const end = now + 366 * D;
    while (now < end) {
      const p = plan({ policy, keys, now });
      for (const g of p.generate) {
        if (g.reason === 'scheduled') assert.ok(g.notBefore - now >= 24 * H, 'successor published at least publishAhead before use');
        if (g.purpose === 'transient') assert.ok(!keys.some((k) => k.meta.epoch === g.epoch), 'one key per epoch');
      }
      keys = apply(keys, p, seq);
      assert.equal(signing(keys, 'credit', now).length >= 1, true, `credit key at ${new Date(now).toISOString()}`);
      const e = epochOf(new Date(now));
      assert.equal(signing(keys, 'transient', now).filter((k) => k.meta.epoch === e).length, 1, `epoch key ${e}`);
      epochsSeen.add(e);
      for (const k of keys) assert.ok(now < Date.parse(k.meta.redemptionEnd), 'expired keys are removed');
      now = Math.min(p.wakeAt ?? now + D, now + 6 * H);
    }
    assert.equal(epochsSeen.size, 13);
    assert.ok(seq.n - 1 <= 13 + 13 + 2 + 1, `keys generated: ${seq.n - 1}`);
  });

  it('truncated ids of published keys are reported as taken', () => {
    const meta = (keyId: string, redemptionEnd: string): KeyMetadata => ({ keyId, purpose: 'credit', notBefore: '2026-01-01T00:00:00Z', issuanceEnd: '2026-01-02T00:00:00Z', redemptionEnd, publicKey: '' });
    const taken = takenTruncatedIds([meta('00'.repeat(31) + 'ab', '2026-02-01T00:00:00Z'), meta('00'.repeat(31) + 'cd', '2026-01-03T00:00:00Z')], at('2026-01-05T00:00:00Z'));
    assert.deepEqual([...taken], [0xab]);
  });
});

describe('TokenIssuer spec validation (zod, mirrors the CRD)', () => {
  it('fills the defaults and resolves names', () => {
    const p = issuerPolicy('main', {});
    assert.equal(p.secretName, 'main-signing-keys');
    assert.equal(p.configMapName, 'main-directory');
    assert.deepEqual(p.protection, { type: 'local', secretName: 'main-kek' });
    assert.equal(p.credit.rotationPeriod, 720 * H);
    assert.equal(p.transient.epoch, 'CalendarMonthUTC');
  });
  it('names every bad field', () => {
    assert.throws(() => issuerPolicy('main', { credit: { rotationPeriod: '30d' }, historyLimit: -1 }), (e: Error) => /spec\.credit\.rotationPeriod/.test(e.message) && /spec\.historyLimit/.test(e.message));
    assert.throws(() => issuerPolicy('main', { credit: { rotationPeriod: '48h', issuanceWindow: '24h' } }), /issuanceWindow: must be at least credit.rotationPeriod/);
    assert.throws(() => issuerPolicy('main', { keyProtection: { azureKeyVault: { vaultUrl: 'http://v', keyName: 'k' } } }), /https/);
  });
  it('parses Go-style durations', () => {
    assert.equal(parseDuration('1h30m'), 90 * 60_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.throws(() => parseDuration('1d'), RangeError);
  });
});
