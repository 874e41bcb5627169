/**
 * `make bench` (protocol): native sign+self-check and verify against
 * `openssl speed rsa2048` from the same run, blindrsa-ts for comparison, and the
 * worker pool's scaling with cores. Figures are medians of 3 runs.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import { challengeDigest, defaultChallenge, NativeTokenClient, pssSpkiFromPublicKey, toHex, verifyTokenSignature } from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner, SignerPool, generateSigningKey } from '@llmtor/protocol/server';
import { cpuModel, fmt, median, opsPerCpuSec, opsPerSecAsync, ratioLine, targetLine } from './measure.js';
import { opensslSpeedRsa2048, type OpensslRsa } from './opensslSpeed.js';

const RUN_MS = Number(process.env.BENCH_MS ?? 1500);
const RUNS = 3;

async function main(): Promise<void> {
  console.log(`# protocol bench — ${new Date().toISOString()} — ${cpuModel()} — node ${process.version}`);
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
    // Per CPU second, like openssl speed (it counts CPU time unless given -elapsed).
    const sign = opsPerCpuSec(() => signer.sign(blinded), RUN_MS);
    const verify = opsPerCpuSec(() => verifyTokenSignature(token, signer.publicKey), RUN_MS);
    rounds.push({ ref, sign, verify });
  }
  const ref = { signPerSec: median(rounds.map((r) => r.ref.signPerSec)), verifyPerSec: median(rounds.map((r) => r.ref.verifyPerSec)), version: rounds[0]!.ref.version };
  const sign = median(rounds.map((r) => r.sign));
  const verify = median(rounds.map((r) => r.verify));
  const signRatio = median(rounds.map((r) => r.sign / r.ref.signPerSec));
  const verifyRatio = median(rounds.map((r) => r.verify / r.ref.verifyPerSec));
  console.log(`openssl speed rsa2048 (${ref.version}): sign ${fmt(ref.signPerSec)}/s, verify ${fmt(ref.verifyPerSec)}/s (1 core)`);
  console.log(`native sign + self-check: ${fmt(sign)}/s   native verify: ${fmt(verify)}/s (1 thread, per CPU second)`);

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

  // Client crypto: blind + finalize per token, natively (a batch of 100 as a refill does, in the
  // worker, and one token alone, in-line) and with blindrsa-ts, against the server's sign +
  // self-check. Measured as CPU time of this process (all its threads, process.cpuUsage), not
  // wall time, so that other processes on a shared machine do not enter the ratio; the server
  // signing done in between to get responses is not counted.
  const native = await NativeTokenClient.forKey(pssSpkiFromPublicKey(key));
  const digest = challengeDigest(defaultChallenge('bench.example'));
  const cpuMs = async (f: () => Promise<unknown> | unknown): Promise<number> => {
    const c0 = process.cpuUsage();
    await f();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000;
  };
  const clientRounds: { batch: number; single: number; js: number; sign: number }[] = [];
  await native.createRequests(digest, 100); // start the worker
  for (let i = 0; i < RUNS; i++) {
    let batch = 0;
    for (let b = 0; b < 3; b++) {
      let made: Awaited<ReturnType<typeof native.createRequests>> = [];
      batch += await cpuMs(async () => (made = await native.createRequests(digest, 100)));
      const sigs = made.map((m) => ({ blindSig: signer.sign(m.request.blindedMsg) }));
      batch += await cpuMs(() =>
        native.finalizeMany(
          made.map((m) => m.pending),
          sigs,
        ),
      );
    }
    let single = 0;
    for (let k = 0; k < 50; k++) {
      let made: Awaited<ReturnType<typeof native.createRequest>> | undefined;
      single += await cpuMs(async () => (made = await native.createRequest(digest)));
      const blindSig = signer.sign(made!.request.blindedMsg);
      single += await cpuMs(() => native.finalize(made!.pending, { blindSig }));
    }
    let js = 0;
    for (let k = 0; k < 5; k++) {
      let made: Awaited<ReturnType<typeof client.createRequest>> | undefined;
      js += await cpuMs(async () => (made = await client.createRequest(digest)));
      const blindSig = signer.sign(made!.request.blindedMsg);
      js += await cpuMs(() => client.finalize(made!.pending, { blindSig }));
    }
    const sign = await cpuMs(() => {
      for (let k = 0; k < 300; k++) signer.sign(blinded);
    });
    clientRounds.push({ batch: batch / 300, single: single / 50, js: js / 5, sign: sign / 300 });
  }
  const cBatch = median(clientRounds.map((r) => r.batch));
  const cSingle = median(clientRounds.map((r) => r.single));
  const cJs = median(clientRounds.map((r) => r.js));
  const cSign = median(clientRounds.map((r) => r.sign));
  console.log(
    `client blind+finalize, CPU per token: native ${cBatch.toFixed(3)} ms (batch of 100, worker), native ${cSingle.toFixed(3)} ms (one token), blindrsa-ts ${cJs.toFixed(2)} ms; server sign+self-check ${cSign.toFixed(3)} ms`,
  );

  console.log('\nratios (same run):');
  console.log(ratioLine('native sign+self-check / openssl sign', signRatio, 1, 0.85));
  console.log(ratioLine('native verify / openssl verify', verifyRatio, 1, 0.85));
  console.log(ratioLine('blindrsa-ts blindSign / openssl sign', jsSign, ref.signPerSec));
  console.log(ratioLine('blindrsa-ts verify / openssl verify', jsVerify, ref.verifyPerSec));
  // Target (issue 12): <= 0.5 ms of CPU per token for blind + finalize in a refill-sized batch.
  const clientRatio = median(clientRounds.map((r) => r.batch / r.sign));
  console.log(
    `${'client blind+finalize (native, batch 100) / sign'.padEnd(48)} ${(clientRatio * 100).toFixed(1).padStart(6)} %  (target <= 0.5 ms CPU per token: ${cBatch <= 0.5 ? 'met' : 'MISSED'}, ${cBatch.toFixed(3)} ms)`,
  );
  console.log(ratioLine('client blind+finalize (native, 1 token) / sign', median(clientRounds.map((r) => r.single / r.sign)), 1));
  console.log(ratioLine('client blind+finalize (blindrsa-ts) / sign', median(clientRounds.map((r) => r.js / r.sign)), 1));
  // Issue 12's raised target, per CPU second as openssl counts. openssl speed times a PKCS#1 v1.5
  // verify of a ready digest; a PSS token verify also hashes the input and runs EMSA-PSS (three more
  // SHA-384): docs/benchmarks.md has the breakdown and why 85 % is below that floor.
  console.log(targetLine('native verify / openssl speed verify (per CPU second)', verifyRatio, 0.85));
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
