import assert from 'node:assert/strict';
import type { KeyMetadata } from '@llmtor/protocol';
import { KEY_VAULT_CHECKS, READY_CHECKS, ROTATING_CHECKS, Reason, issuerPolicy, keyVaultCondition, readyCondition, rotatingCondition, type Check, type ConditionInput, type ConditionVerdict } from '../src/index.js';

const H = 3_600_000;
const NOW = Date.parse('2026-03-10T12:00:00Z');
const iso = (t: number) => new Date(t).toISOString();

function key(purpose: KeyMetadata['purpose'], id: string, notBefore: number, issuanceEnd: number, epoch?: string): KeyMetadata {
  return { keyId: id.padStart(64, '0'), purpose, notBefore: iso(notBefore), issuanceEnd: iso(issuanceEnd), redemptionEnd: iso(issuanceEnd + 720 * H), publicKey: '', ...(epoch ? { epoch } : {}) };
}

const credit = key('credit', 'c1', NOW - 24 * H, NOW + 700 * H);
const successor = key('credit', 'c2', NOW + 2 * H, NOW + 1400 * H);
const march = key('transient', 't3', Date.parse('2026-03-01T00:00:00Z'), Date.parse('2026-04-01T00:00:00Z'), '2026-03');
const local = issuerPolicy('main', { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '720h', publishAhead: '24h' } });
const vault = issuerPolicy('main', { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '720h', publishAhead: '24h' }, keyProtection: { azureKeyVault: { vaultUrl: 'https://v.vault.azure.net', keyName: 'k' } } });
const noPlan: ConditionInput['plan'] = { generate: [] };

function input(over: Partial<ConditionInput>): ConditionInput {
  return { issuerName: 'main', policy: local, live: [credit, march], plan: { ...noPlan, nextRotation: NOW + 600 * H }, now: NOW, problems: [], ...over };
}

interface Row {
  name: string;
  input: ConditionInput;
  want: Pick<ConditionVerdict, 'status' | 'reason'> | undefined;
  /** A part of the message a person acts on. */
  says?: string;
}

function table(what: string, evaluate: (i: ConditionInput) => ConditionVerdict | undefined, rows: Row[]): void {
  describe(what, () => {
    for (const row of rows) {
      it(row.name, () => {
        const got = evaluate(row.input);
        assert.deepEqual(got && { status: got.status, reason: got.reason }, row.want);
        if (row.says) assert.match(got!.message, new RegExp(row.says.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      });
    }
  });
}

table('readyCondition: ordered checks', readyCondition, [
  { name: 'credit and epoch key sign: KeysCurrent', input: input({}), want: { status: 'True', reason: Reason.KeysCurrent }, says: 'epoch 2026-03 key' },
  { name: 'problems are appended to a True condition', input: input({ problems: ['Secret entry x: bad'] }), want: { status: 'True', reason: Reason.KeysCurrent }, says: 'Problems: Secret entry x: bad.' },
  { name: 'a lost KEK wins over signing keys', input: input({ failure: { reason: Reason.KeyEncryptionKeyLost, message: 'restore it' } }), want: { status: 'False', reason: Reason.KeyEncryptionKeyLost }, says: 'restore it' },
  { name: 'another failure does not hide signing keys', input: input({ failure: { reason: Reason.KeyVaultUnreachable, message: 'dns' } }), want: { status: 'True', reason: Reason.KeysCurrent } },
  { name: 'no epoch key this month: NoEpochKey', input: input({ live: [credit] }), want: { status: 'False', reason: Reason.NoEpochKey }, says: 'no transient key signs for epoch 2026-03' },
  { name: 'epochs disabled: the credit key is enough', input: input({ live: [credit], policy: issuerPolicy('main', { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '720h', publishAhead: '24h' }, transient: { epoch: 'Disabled' } }) }), want: { status: 'True', reason: Reason.KeysCurrent } },
  { name: 'only a future credit key: NoActiveCreditKey', input: input({ live: [successor, march] }), want: { status: 'False', reason: Reason.NoActiveCreditKey }, says: 'no credit key can sign now' },
  { name: 'the last failure is named', input: input({ live: [], failure: { reason: Reason.KeyVaultForbidden, message: 'grant the role' } }), want: { status: 'False', reason: Reason.NoActiveCreditKey }, says: 'Last failure (KeyVaultForbidden): grant the role' },
  { name: 'paused without keys says how to resume', input: input({ live: [], policy: { ...local, paused: true } }), want: { status: 'False', reason: Reason.NoActiveCreditKey }, says: 'Rotation is paused (spec.paused)' },
]);

table('rotatingCondition: ordered checks', rotatingCondition, [
  { name: 'nothing pending: Idle with the next takeover', input: input({}), want: { status: 'False', reason: Reason.Idle }, says: `next credit key takes over at ${iso(NOW + 600 * H).replace('.000Z', 'Z')}; it is published 1d before` },
  { name: 'no credit key: no rotation to announce', input: input({ live: [march] }), want: { status: 'False', reason: Reason.Idle }, says: 'no rotation scheduled' },
  { name: 'a published successor: SuccessorPublished', input: input({ live: [credit, successor, march] }), want: { status: 'True', reason: Reason.SuccessorPublished }, says: `takes over at ${successor.notBefore}` },
  { name: 'invalid request wins over a successor', input: input({ live: [credit, successor], plan: { ...noPlan, invalidRotateRequest: 'bad annotation' } }), want: { status: 'False', reason: Reason.InvalidRotationRequest }, says: 'bad annotation' },
  { name: 'keys due during a failure: RotationBlocked', input: input({ plan: { ...noPlan, invalidRotateRequest: 'bad', generate: [{ purpose: 'credit', notBefore: NOW, issuanceEnd: NOW + H, redemptionEnd: NOW + 2 * H, reason: 'scheduled' }] }, failure: { reason: Reason.KeyVaultUnreachable, message: 'dns' } }), want: { status: 'False', reason: Reason.RotationBlocked }, says: '1 key(s) due but not generated: dns' },
  { name: 'a failure with nothing due is not a block', input: input({ failure: { reason: Reason.KeyVaultUnreachable, message: 'dns' } }), want: { status: 'False', reason: Reason.Idle } },
  { name: 'refused wins over blocked', input: input({ plan: { ...noPlan, refusedRotateRequest: 'too many keys', generate: [{ purpose: 'credit', notBefore: NOW, issuanceEnd: NOW + H, redemptionEnd: NOW + 2 * H, reason: 'scheduled' }] }, failure: { reason: Reason.KeyVaultUnreachable, message: 'dns' } }), want: { status: 'False', reason: Reason.RotationRefused }, says: 'too many keys' },
  { name: 'paused: says how to resume', input: input({ policy: { ...local, paused: true }, plan: { ...noPlan, refusedRotateRequest: 'x' } }), want: { status: 'False', reason: Reason.Paused }, says: 'kubectl patch tokenissuer main' },
  { name: 'paused with a request: the request is named', input: input({ policy: { ...local, paused: true }, plan: { ...noPlan, pausedRotateRequest: 'runs when paused is false' } }), want: { status: 'False', reason: Reason.Paused }, says: 'runs when paused is false' },
  { name: 'a paused request on a running issuer is ignored', input: input({ plan: { ...noPlan, pausedRotateRequest: 'x' } }), want: { status: 'False', reason: Reason.Idle } },
]);

table('keyVaultCondition: ordered checks', keyVaultCondition, [
  { name: 'local protection: no condition', input: input({ kekDescription: 'local:main-kek' }), want: undefined },
  { name: 'vault wrapped: Reachable', input: input({ policy: vault, kekDescription: 'https://v.vault.azure.net/keys/k/1' }), want: { status: 'True', reason: Reason.Reachable }, says: 'wrapping data keys with https://v.vault.azure.net/keys/k/1' },
  { name: 'vault failure: its reason', input: input({ policy: vault, failure: { reason: Reason.KeyVaultKeyNotFound, message: 'create it' } }), want: { status: 'False', reason: Reason.KeyVaultKeyNotFound }, says: 'create it' },
  { name: 'credential failure counts as unreachable', input: input({ policy: vault, failure: { reason: Reason.CredentialUnavailable, message: 'workload identity' } }), want: { status: 'False', reason: Reason.CredentialUnavailable } },
  { name: 'a failure elsewhere leaves the condition as it was', input: input({ policy: vault, failure: { reason: Reason.ReconcileFailed, message: 'api down' } }), want: undefined },
  { name: 'paused (vault not asked): no verdict', input: input({ policy: { ...vault, paused: true } }), want: undefined },
]);

describe('condition chains', () => {
  it('every chain ends in a check that always applies, except the Key Vault one', () => {
    const names = (c: readonly Check[]) => c.map((x) => x.name);
    assert.deepEqual(names(READY_CHECKS), ['kek-lost', 'keys-current', 'keys-missing']);
    assert.deepEqual(names(ROTATING_CHECKS), ['paused-request', 'paused', 'refused', 'blocked', 'invalid-request', 'successor-published', 'idle']);
    assert.deepEqual(names(KEY_VAULT_CHECKS), ['vault-failed', 'vault-wrapped']);
    assert.ok(READY_CHECKS.at(-1)!.evaluate(input({ live: [] })));
    assert.ok(ROTATING_CHECKS.at(-1)!.evaluate(input({ live: [] })));
  });
});
