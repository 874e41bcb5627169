/**
 * The demo page's browser RSA code (proxy/web/demo/blindRsa.ts, bundled as the
 * page gets it, run on Node's WebCrypto) against the protocol package: the
 * native signer signs what it blinds, the native verifier accepts what it
 * finalizes, and NativeTokenClient finalizes its blinding to the same token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { build } from 'esbuild';
import { BlindSigner, generateSigningKey } from '@llmtor/protocol/server';
import { bytesEqual, encodeToken, encodeTokenInput, NativeTokenClient, pssSpkiFromPublicKey, TOKEN_TYPE_BLIND_RSA, toBase64Url, tokenKeyId, verifyToken } from '@llmtor/protocol';

// The module's surface used here (the browser project is type-checked on its own, with the DOM library).
interface WebKey {
  modBits: number;
  e: bigint;
}
interface BlindRsa {
  importTokenKey(spki: Uint8Array): Promise<WebKey>;
  blind(key: WebKey, msg: Uint8Array): Promise<{ blindedMsg: Uint8Array; r: bigint; inv: bigint }>;
  finalize(key: WebKey, msg: Uint8Array, blindSig: Uint8Array, inv: bigint): Promise<Uint8Array>;
  explainPair(key: WebKey, blindedMsg: Uint8Array, blindSig: Uint8Array, authenticator: Uint8Array): { r: bigint; consistent: boolean };
  toBytes(x: bigint, len: number): Uint8Array;
  toBase64Url(b: Uint8Array, padded?: boolean): string;
  fromBase64Url(s: string): Uint8Array;
}
const SOURCE = fileURLToPath(new URL('../../../web/demo/blindRsa.ts', import.meta.url));

describe('the demo page’s blind RSA (browser code) against the protocol package', function () {
  this.timeout(30_000);
  let web: BlindRsa;
  let dir: string;
  let signer: BlindSigner;
  let spki: Uint8Array;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-blindrsa-'));
    const out = await build({ entryPoints: [SOURCE], bundle: true, format: 'esm', platform: 'neutral', write: false, logLevel: 'silent' });
    writeFileSync(path.join(dir, 'blindRsa.mjs'), out.outputFiles[0]!.text);
    web = (await import(pathToFileURL(path.join(dir, 'blindRsa.mjs')).href)) as BlindRsa;
    signer = new BlindSigner(await generateSigningKey());
    spki = pssSpkiFromPublicKey(signer.publicKey);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('blinds what the native signer signs, and finalizes tokens the native verifier and NativeTokenClient agree on', async () => {
    const key = await web.importTokenKey(spki);
    assert.equal(key.modBits, 2048);
    assert.equal(key.e, 65537n);
    const keyId = tokenKeyId(spki);
    const native = await NativeTokenClient.forKey(spki);
    const digest = new Uint8Array(randomBytes(32));
    for (let i = 0; i < 3; i++) {
      const input = encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: new Uint8Array(randomBytes(32)), challengeDigest: digest, tokenKeyId: keyId });
      const b = await web.blind(key, input);
      const blindSig = signer.sign(b.blindedMsg);
      const sig = await web.finalize(key, input, blindSig, b.inv);
      const token = encodeToken({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: input.subarray(2, 34), challengeDigest: digest, tokenKeyId: keyId, authenticator: sig });
      verifyToken(token, (id) => (bytesEqual(id, keyId) ? signer.publicKey : undefined), digest);
      const same = await native.finalize({ tokenInput: toBase64Url(input), inv: toBase64Url(web.toBytes(b.inv, 256)) }, { blindSig });
      assert.ok(bytesEqual(same, token));
      // The matching check: the true pair gives back the r this side drew.
      assert.equal(web.explainPair(key, b.blindedMsg, blindSig, sig).r, b.r);
    }
  });

  it('refuses a blind signature that does not finalize into a valid token', async () => {
    const key = await web.importTokenKey(spki);
    const keyId = tokenKeyId(spki);
    const input = encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: new Uint8Array(randomBytes(32)), challengeDigest: new Uint8Array(32), tokenKeyId: keyId });
    const b = await web.blind(key, input);
    const blindSig = signer.sign(b.blindedMsg);
    blindSig[200] = blindSig[200]! ^ 1;
    await assert.rejects(web.finalize(key, input, blindSig, b.inv), /does not finalize/);
    // Signed for another input: a valid signature, of the wrong message.
    const other = await web.blind(key, encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: new Uint8Array(randomBytes(32)), challengeDigest: new Uint8Array(32), tokenKeyId: keyId }));
    await assert.rejects(web.finalize(key, input, signer.sign(other.blindedMsg), b.inv), /does not finalize/);
  });

  it('base64url round-trips like the protocol package', () => {
    for (const n of [0, 1, 2, 3, 31, 32, 354]) {
      const bytes = new Uint8Array(randomBytes(n));
      assert.equal(web.toBase64Url(bytes), toBase64Url(bytes));
      assert.ok(bytesEqual(web.fromBase64Url(web.toBase64Url(bytes, true)), bytes));
    }
  });
});
