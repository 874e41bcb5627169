/**
 * `make bench` (protocol): native sign+self-check and verify against
 * `openssl speed rsa2048` from the same run, blindrsa-ts for comparison, and the
 * worker pool's scaling with cores. Figures are medians of 3 runs.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { availableParallelism, cpus } from 'node:os';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import { challengeDigest, defaultChallenge, NativeTokenClient, pssSpkiFromPublicKey, toHex, verifyTokenSignature } from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner, SignerPool, generateSigningKey } from '@llmtor/protocol/server';
import { fmt, median, opsPerSec, opsPerSecAsync, ratioLine } from './measure.js';
import { opensslSpeedRsa2048, type OpensslRsa } from './opensslSpeed.js';

const RUN_MS = Number(process.env.BENCH_MS ?? 1500);
const RUNS = 3;

async function main(): Promise<void> {
  console.log(`# protocol bench — ${new Date().toISOString()} — ${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()} — node ${process.version}`);
  const key = await generateSigningKey();
  const signer = new BlindSigner(key);
  const client = await TokenClient.forKey(pssSpkiFromPublicKey(key));
  const { request, pending } = await client.createRequest(defaultChallenge('bench.example'));
  const blinded = request.blindedMsg;
  const token = await client.finalize(pending, { blindSig: signer.sign(blinded) });

  // Reference and subject are measured in alternating rounds, and the ratio is taken
  // per round: on a shared machine the load drifts, a ratio within one round does not.
  const rounds: { ref: OpensslRsa; sign: number; verify: number }[] = [];
  for (let i = 0; i < RUNS; i++) {
    const ref = opensslSpeedRsa2048(1);
    const sign = opsPerSec(() => signer.sign(blinded), RUN_MS);
    const verify = opsPerSec(() => verifyTokenSignature(token, signer.publicKey), RUN_MS);
    rounds.push({ ref, sign, verify });
  }
  const ref = { signPerSec: median(rounds.map((r) => r.ref.signPerSec)), verifyPerSec: median(rounds.map((r) => r.ref.verifyPerSec)), version: rounds[0]!.ref.version };
  const sign = median(rounds.map((r) => r.sign));
  const verify = median(rounds.map((r) => r.verify));
  const signRatio = median(rounds.map((r) => r.sign / r.ref.signPerSec));
  const verifyRatio = median(rounds.map((r) => r.verify / r.ref.verifyPerSec));
  console.log(`openssl speed rsa2048 (${ref.version}): sign ${fmt(ref.signPerSec)}/s, verify ${fmt(ref.verifyPerSec)}/s (1 core)`);
  console.log(`native sign + self-check: ${fmt(sign)}/s   native verify: ${fmt(verify)}/s (1 thread)`);

  // blindrsa-ts: the sjcl big-number blindSign (reference only; never the production signer).
  const suite = RSABSSA.SHA384.PSS.Deterministic();
  const jwk = key.export({ format: 'jwk' });
  const alg = { name: 'RSA-PSS', hash: 'SHA-384' };
  const priv = await webcrypto.subtle.importKey('jwk', { ...jwk, ext: true }, alg, true, ['sign']);
  const pub = await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, alg, true, ['verify']);
  const jsSign = await opsPerSecAsync(() => suite.blindSign(priv as never, blinded), 2000);
  const jsVerify = median(await Promise.all([0, 1, 2].map(() => opsPerSecAsync(() => suite.verify(pub as never, token.subarray(98), token.subarray(0, 98)), RUN_MS / 2))));
  console.log(`blindrsa-ts blindSign: ${fmt(jsSign)}/s   blindrsa-ts verify: ${fmt(jsVerify)}/s`);

  // Worker pool scaling.
  const batch = Array.from({ length: 200 }, () => {
    const m = randomBytes(256);
    m[0] = 0;
    return new Uint8Array(m);
  });
  const scaling: { size: number; rate: number }[] = [];
  for (const size of [1, availableParallelism()].filter((v, i, a) => a.indexOf(v) === i)) {
    const pool = new SignerPool(size);
    await pool.setKeys([{ keyId: toHex(signer.keyId), pkcs8: key.export({ type: 'pkcs8', format: 'der' }) }]);
    await pool.signBatch(toHex(signer.keyId), batch.slice(0, 10));
    const rs: number[] = [];
    for (let i = 0; i < RUNS; i++) rs.push(await opsPerSecAsync(() => pool.signBatch(toHex(signer.keyId), batch), RUN_MS, batch.length));
    const rate = median(rs);
    scaling.push({ size, rate });
    await pool.close();
    console.log(`signer pool, ${size} worker(s): ${fmt(rate)} signatures/s`);
  }

  // Client crypto: blind + finalize per token, natively (batch of 100 as a refill does, and one
  // alone) and with blindrsa-ts, each against the server's sign+self-check in the same round.
  const native = await NativeTokenClient.forKey(pssSpkiFromPublicKey(key));
  const digest = challengeDigest(defaultChallenge('bench.example'));
  const clientRounds: { batch: number; single: number; js: number; sign: number }[] = [];
  const perToken = async (f: () => Promise<number>, ms: number): Promise<number> => {
    const start = performance.now();
    let n = 0;
    while (performance.now() - start < ms) n += await f();
    return (performance.now() - start) / n;
  };
  for (let i = 0; i < RUNS; i++) {
    const batch = await perToken(async () => {
      const made = await native.createRequests(digest, 100);
      const sigs = made.map((m) => ({ blindSig: signer.sign(m.request.blindedMsg) }));
      await native.finalizeMany(
        made.map((m) => m.pending),
        sigs,
      );
      return 100;
    }, RUN_MS);
    const single = await perToken(async () => {
      const { request, pending } = await native.createRequest(digest);
      await native.finalize(pending, { blindSig: signer.sign(request.blindedMsg) });
      return 1;
    }, RUN_MS);
    const js = await perToken(async () => {
      const { request: r, pending: p } = await client.createRequest(digest);
      await client.finalize(p, { blindSig: signer.sign(r.blindedMsg) });
      return 1;
    }, RUN_MS);
    const sign = 1000 / opsPerSec(() => signer.sign(blinded), RUN_MS / 2);
    // The loops above include one server sign per token: take it out again.
    clientRounds.push({ batch: batch - sign, single: single - sign, js: js - sign, sign });
  }
  const cBatch = median(clientRounds.map((r) => r.batch));
  const cSingle = median(clientRounds.map((r) => r.single));
  const cJs = median(clientRounds.map((r) => r.js));
  const cSign = median(clientRounds.map((r) => r.sign));
  console.log(
    `client blind+finalize per token: native ${cBatch.toFixed(3)} ms (batch of 100, worker), native ${cSingle.toFixed(3)} ms (one token), blindrsa-ts ${cJs.toFixed(2)} ms; server sign ${cSign.toFixed(3)} ms`,
  );

  console.log('\nratios (same run):');
  console.log(ratioLine('native sign+self-check / openssl sign', signRatio, 1, 0.85));
  console.log(ratioLine('native verify / openssl verify', verifyRatio, 1, 0.6));
  console.log(ratioLine('blindrsa-ts blindSign / openssl sign', jsSign, ref.signPerSec));
  console.log(ratioLine('blindrsa-ts verify / openssl verify', jsVerify, ref.verifyPerSec));
  // Target: <= 0.5 ms per token on the Intel Xeon where the server's sign takes 0.40 ms, i.e.
  // <= 125 % of the sign measured in the same round (a ratio survives a loaded machine).
  const clientRatio = median(clientRounds.map((r) => r.batch / r.sign));
  console.log(
    `${'client blind+finalize (native, batch 100) / sign'.padEnd(48)} ${(clientRatio * 100).toFixed(1).padStart(6)} %  (target <= 125 %, i.e. <= 0.5 ms at a 0.40 ms sign: ${clientRatio <= 1.25 ? 'met' : 'MISSED'})`,
  );
  console.log(ratioLine('client blind+finalize (native, 1 token) / sign', median(clientRounds.map((r) => r.single / r.sign)), 1));
  console.log(ratioLine('client blind+finalize (blindrsa-ts) / sign', median(clientRounds.map((r) => r.js / r.sign)), 1));
  if (scaling.length > 1) {
    const [one, all] = [scaling[0]!, scaling[scaling.length - 1]!];
    console.log(ratioLine(`pool ${all.size} workers / ${all.size} x pool 1 worker`, all.rate, one.rate * all.size));
    console.log(`pool speed-up ${all.size} workers vs 1: x${(all.rate / one.rate).toFixed(2)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
