import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtocolError, toHex } from '@llmtor/protocol';
import { BlindSigner, SignerPool } from '@llmtor/protocol/server';
import { testKey } from './support.js';

describe('signer worker pool', () => {
  let pool: SignerPool;
  const signer = new BlindSigner(testKey());
  const keyId = toHex(signer.keyId);
  before(async () => {
    pool = new SignerPool(2);
    await pool.setKeys([{ keyId, pkcs8: testKey().export({ type: 'pkcs8', format: 'der' }) }]);
  });
  after(() => pool.close());

  function msgs(n: number): Uint8Array[] {
    return Array.from({ length: n }, () => {
      const m = randomBytes(256);
      m[0] = 0; // below any 2048-bit modulus
      return new Uint8Array(m);
    });
  }

  it('signs a batch across workers with results in request order, equal to the single-thread signer', async () => {
    const batch = msgs(37);
    const out = await pool.signBatch(keyId, batch);
    assert.equal(out.length, 37);
    out.forEach((s, i) => assert.deepEqual(s, signer.sign(batch[i]!)));
  });
  it('reports a failure per message without failing the rest', async () => {
    const batch = msgs(3);
    batch[1] = new Uint8Array(256).fill(0xff);
    const out = await pool.signBatch(keyId, batch);
    assert.ok(out[0] instanceof Uint8Array);
    assert.ok(out[1] instanceof ProtocolError && out[1].code === 'message_out_of_range');
    assert.ok(out[2] instanceof Uint8Array);
  });
  it('refuses an unusable key before any worker sees it, and keeps signing with the previous keys', async () => {
    const bad = testKey().export({ type: 'pkcs8', format: 'der' }).subarray(0, 100);
    await assert.rejects(pool.setKeys([{ keyId: 'ff'.repeat(32), pkcs8: bad }]), (e: unknown) => e instanceof ProtocolError);
    const out = await pool.signBatch(keyId, msgs(4));
    assert.ok(out.every((s) => s instanceof Uint8Array));
  });
  it('a worker that dies fails only its own calls and is replaced with the current keys', async () => {
    const before = pool.respawns;
    await pool.killWorker(0);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(pool.respawns, before + 1);
    const batch = msgs(10);
    const out = await pool.signBatch(keyId, batch);
    out.forEach((s, i) => assert.deepEqual(s, signer.sign(batch[i]!)));
  });
  it('rejects a key it does not hold', async () => {
    await assert.rejects(pool.signBatch('00'.repeat(32), msgs(1)), (e: unknown) => e instanceof ProtocolError && e.code === 'unknown_key_id');
  });
});
