import assert from 'node:assert/strict';
import { ProtocolError, parseAccountView, type AccountView } from '@llmtor/protocol';

const view: AccountView = {
  account_ref: 'acct_1',
  balance: 7,
  created_at: '2026-12-01T00:00:00.000Z',
  purchases: [{ session_id: 'cs_1', pack: 'p100', credits: 100, amount: 500, currency: 'eur', status: 'paid', created_at: '2026-12-01T00:00:00.000Z', paid_at: null, reversed_credits: 0 }],
  abuse_tokens: { permanent: { issued: 1, limit: 1 }, transient: { epoch: '2026-12', issued: 0, limit: 3 } },
};

const malformed = (e: unknown) => e instanceof ProtocolError && e.code === 'malformed';

describe('GET /v1/account: one shape for the server and its clients', () => {
  it('reads what the server writes, dropping unknown fields', () => {
    const wire = JSON.parse(JSON.stringify({ ...view, later_field: 1, purchases: [{ ...view.purchases[0], extra: true }] })) as unknown;
    assert.deepEqual(parseAccountView(wire), view);
  });
  it('names the field that is missing or of the wrong type', () => {
    const cases: [unknown, RegExp][] = [
      [null, /account must be an object/],
      [{ ...view, balance: 1.5 }, /account\.balance must be an integer/],
      [{ ...view, purchases: {} }, /account\.purchases must be an array/],
      [{ ...view, purchases: [{ ...view.purchases[0], paid_at: 3 }] }, /purchases\[0\]\.paid_at must be a string or null/],
      [{ ...view, abuse_tokens: { permanent: { issued: 0, limit: 1 } } }, /account\.abuse_tokens\.transient must be an object/],
      [{ ...view, abuse_tokens: { ...view.abuse_tokens, transient: { issued: 0, limit: 1 } } }, /transient\.epoch must be a string/],
    ];
    for (const [input, message] of cases) assert.throws(() => parseAccountView(input), (e: unknown) => malformed(e) && message.test((e as Error).message));
  });
});
