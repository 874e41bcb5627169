import assert from 'node:assert/strict';
import type { IssuerDirectory } from '@llmtor/protocol';
import { nextEpochStart, nextRenewalCheckDelay, permanentAction, pickIssuingKey, transientAction } from '../src/core/epoch.js';

const sec = (iso: string) => Math.floor(Date.parse(iso) / 1000);
const dir: IssuerDirectory = {
  'issuer-request-uri': '/token-request',
  'token-keys': [
    { 'token-type': 2, 'token-key': 'old', purpose: 'credit', 'not-before': sec('2026-09-01T00:00:00Z'), 'issuance-not-after': sec('2026-12-01T00:00:00Z'), 'redemption-not-after': sec('2027-01-01T00:00:00Z') },
    { 'token-type': 2, 'token-key': 'new', purpose: 'credit', 'not-before': sec('2026-11-01T00:00:00Z'), 'issuance-not-after': sec('2027-02-01T00:00:00Z') },
    { 'token-type': 2, 'token-key': 'future', purpose: 'credit', 'not-before': sec('2027-01-01T00:00:00Z') },
    { 'token-type': 2, 'token-key': 'perm', purpose: 'permanent' },
    { 'token-type': 2, 'token-key': 'tr-11', purpose: 'transient', epoch: '2026-11', 'not-before': sec('2026-10-31T00:00:00Z'), 'issuance-not-after': sec('2026-12-01T00:00:00Z'), 'redemption-not-after': sec('2026-12-03T00:00:00Z') },
  ],
};

describe('epoch logic', () => {
  it('picks the newest credit key whose issuance window is open', () => {
    assert.equal(pickIssuingKey(dir, 'credit', Date.parse('2026-11-25T00:00:00Z'))?.tokenKey, 'new');
    assert.equal(pickIssuingKey(dir, 'credit', Date.parse('2026-10-01T00:00:00Z'))?.tokenKey, 'old');
    assert.equal(pickIssuingKey(dir, 'permanent', Date.parse('2026-11-25T00:00:00Z'))?.tokenKey, 'perm');
  });

  it('treats keys without a purpose as credit keys (a plain RFC 9578 directory)', () => {
    const plain: IssuerDirectory = { 'issuer-request-uri': '/t', 'token-keys': [{ 'token-type': 2, 'token-key': 'k' }] };
    assert.equal(pickIssuingKey(plain, 'credit', Date.now())?.tokenKey, 'k');
    assert.equal(pickIssuingKey(plain, 'transient', Date.now()), undefined);
  });

  it('uses a transient key only in its own epoch', () => {
    assert.equal(pickIssuingKey(dir, 'transient', Date.parse('2026-11-30T23:59:59Z'))?.tokenKey, 'tr-11');
    assert.equal(pickIssuingKey(dir, 'transient', Date.parse('2026-10-31T12:00:00Z')), undefined, 'published early but for the next epoch');
    assert.equal(pickIssuingKey(dir, 'transient', Date.parse('2026-12-01T00:00:00Z')), undefined);
  });

  it('keeps the transient token within its epoch and renews it at the month turn once the new key is out', () => {
    const held = { purpose: 'transient' as const, epoch: '2026-11', redemptionNotAfterSec: sec('2026-12-03T00:00:00Z') };
    assert.equal(transientAction(undefined, Date.parse('2026-11-10T00:00:00Z'), true), 'obtain');
    assert.equal(transientAction(held, Date.parse('2026-11-30T23:00:00Z'), true), 'keep');
    assert.equal(transientAction(held, Date.parse('2026-12-01T00:10:00Z'), false), 'keep', 'no December key yet: the November token still redeems');
    assert.equal(transientAction(held, Date.parse('2026-12-01T00:10:00Z'), true), 'renew');
    assert.equal(transientAction(held, Date.parse('2026-12-04T00:00:00Z'), false), 'renew', 'its key no longer redeems');
  });

  it('obtains the permanent token once and renews it only when its key stops redeeming', () => {
    assert.equal(permanentAction(undefined, Date.now()), 'obtain');
    assert.equal(permanentAction({ purpose: 'permanent' }, Date.now()), 'keep');
    assert.equal(permanentAction({ purpose: 'permanent', redemptionNotAfterSec: 10 }, 20_000), 'renew');
  });

  it('schedules the next check at the next epoch plus a random spread', () => {
    const now = Date.parse('2026-12-31T23:59:00Z');
    assert.equal(nextEpochStart(now), Date.parse('2027-01-01T00:00:00Z'));
    assert.equal(nextRenewalCheckDelay(now, () => 0), 60_000);
    assert.equal(nextRenewalCheckDelay(now, () => 0.5, 1000), 60_500);
  });
});
