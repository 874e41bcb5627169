import assert from 'node:assert/strict';
import { epochOf, keyEntry, Keyring, LocalKeyEncryptionKey, parseIssuerDirectory, type SigningKeyFile } from '@llmtor/protocol';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { KubeClusterApi, LOCAL_KEK_DATA_KEY, ManualClock, Reconciler, metadataOf } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace } from './support/cluster.js';
import { issueToken, loadLikeProxy, redeem } from './support/tokens.js';

const H = 3_600_000;
const D = 24 * H;

describe('a year of rotations and monthly epochs in fast-forward (injected clock, real API server)', function () {
  this.timeout(300_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;

  before(async function () {
    this.timeout(600_000);
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'year');
  });

  it('keeps a signing credit key and the epoch key at every step, removes keys only after redemption, rejects expired tokens', async () => {
    const clock = new ManualClock(Date.parse('2026-01-15T09:30:00Z'));
    const reconciler = new Reconciler({ api: new KubeClusterApi(kubeConfig(env)), clock });
    await applyIssuer(env, ns, 'main', { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '240h', publishAhead: '24h' }, transient: { grace: '72h' } });
    const seen = new Map<string, { file: SigningKeyFile; firstSeen: number }>();
    const epochs = new Set<string>();
    let firstToken: { token: Uint8Array; keyId: string; redemptionEnd: number } | undefined;
    const end = clock.now() + 366 * D;
    let reconciles = 0;
    for (; clock.now() < end; clock.advance(D)) {
      const now = clock.now();
      // reconcile until the plan has nothing left to do at this instant
      for (let i = 0; i < 5; i++) {
        const r = await reconciler.reconcile(ns, 'main');
        reconciles++;
        assert.equal(r.outcome, 'ok');
        if (r.requeueAfterMs !== 0) break;
      }
      const files = await cluster.keyFiles(ns, 'main-signing-keys');
      const ring = new Keyring([...files.values()].map((f) => keyEntry(metadataOf(f))));
      const at = new Date(now).toISOString();
      assert.ok(ring.currentIssuing('credit', now), `a credit key signs at ${at}`);
      assert.ok(ring.currentIssuing('transient', now, epochOf(new Date(now))), `the ${epochOf(new Date(now))} key signs at ${at}`);
      assert.ok(ring.currentIssuing('permanent', now), `a permanent key signs at ${at}`);
      assert.deepEqual(ring.truncatedCollisions(now), [], 'no two published keys share a truncated key id');
      for (const [id, s] of seen) if (!files.has(id)) assert.ok(now >= Date.parse(s.file.redemptionEnd), `key ${id.slice(0, 12)} removed at ${at} inside its redemption window`);
      for (const [id, f] of files) {
        if (seen.has(id)) continue;
        seen.set(id, { file: f, firstSeen: now });
        if (seen.size > 3 && f.purpose === 'credit') assert.ok(Date.parse(f.notBefore) > now, 'a successor is published before it is used');
      }
      const cm = await cluster.configMapData(ns, 'main-directory');
      assert.deepEqual(parseIssuerDirectory(cm!['directory.json']), ring.directory('/token-request', now), 'the ConfigMap directory matches the Secret');
      const st = (await cluster.issuer(ns, 'main')).status!;
      assert.equal(st.currentEpoch, epochOf(new Date(now)));
      assert.equal(st.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
      epochs.add(st.currentEpoch!);

      if (!firstToken) {
        const kekSecret = await cluster.secret(ns, 'main-kek');
        const kek = new LocalKeyEncryptionKey('main-kek', Buffer.from(kekSecret!.data![LOCAL_KEK_DATA_KEY]!, 'base64').toString('utf8'));
        const loaded = await loadLikeProxy(files.values(), kek);
        const credit = ring.currentIssuing('credit', now)!;
        const token = await issueToken(files.get(credit.meta.keyId)!, loaded.keys.get(credit.meta.keyId)!);
        redeem(loaded.ring, token, now);
        firstToken = { token, keyId: credit.meta.keyId, redemptionEnd: credit.redemptionEnd };
      } else if (now < firstToken.redemptionEnd) {
        redeem(ring, firstToken.token, now); // still accepted by the current key set, after rotations
      } else {
        assert.throws(() => redeem(ring, firstToken!.token, now), (e: Error & { code?: string }) => e.code === 'unknown_key_id', 'a token of a key past its redemption window is rejected');
        assert.ok(!files.has(firstToken.keyId), 'and its key is gone from the Secret');
      }
    }
    assert.equal(epochs.size, 13, `epochs seen: ${[...epochs].join(' ')}`);
    const byPurpose = (p: string) => [...seen.values()].filter((s) => s.file.purpose === p).length;
    assert.equal(byPurpose('transient'), 13, 'one key per epoch');
    assert.ok(byPurpose('credit') >= 12 && byPurpose('credit') <= 14, `credit keys: ${byPurpose('credit')}`);
    assert.equal(byPurpose('permanent'), 1);
    const events = await cluster.events(ns);
    assert.ok(events.filter((e) => e.reason === 'EpochKeyPublished').length >= 13);
    assert.ok(events.some((e) => e.reason === 'KeyRemoved'));
    console.log(`      ${reconciles} reconciles, ${seen.size} keys generated over 366 simulated days`);
  });
});
