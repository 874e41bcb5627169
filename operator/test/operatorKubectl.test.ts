import assert from 'node:assert/strict';
import { LocalKeyEncryptionKey, openSigningKeyFile, parseIssuerDirectory, tokenKeyId, toHex } from '@llmtor/protocol';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { LOCAL_KEK_DATA_KEY, ROTATE_ANNOTATION, HANDLED_ROTATION_ANNOTATION, SpecError, issuerPolicy, startOperator, type RunningOperator, type IssuerStatus } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

describe('operator against a real kube-apiserver, driven with kubectl', function () {
  this.timeout(120_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;
  let op: RunningOperator;

  before(async function () {
    this.timeout(600_000); // the first run may build kube-apiserver and etcd
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'kubectl');
    op = await startOperator({ kc: kubeConfig(env), namespace: ns, identity: 'op-a', resyncMs: 2_000, lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 } });
  });
  after(async () => {
    await op?.stop();
  });

  const ready = (s: IssuerStatus | undefined) => s?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

  it('first reconcile of a kubectl-applied TokenIssuer creates keys, Secret, ConfigMap and a Ready status', async () => {
    await applyIssuer(env, ns, 'main', { credit: { rotationPeriod: '720h', publishAhead: '1s' } });
    const issuer = await waitFor('Ready', async () => {
      const i = await cluster.issuer(ns, 'main');
      return ready(i.status) ? i : undefined;
    });
    const st = issuer.status!;
    assert.equal(st.observedGeneration, issuer.metadata.generation);
    const purposes = (st.keys ?? []).map((k) => k.purpose).sort();
    assert.deepEqual(purposes, ['credit', 'permanent', 'transient']);
    assert.ok((st.keys ?? []).every((k) => k.state === 'Active'));
    assert.equal(st.currentEpoch, new Date().toISOString().slice(0, 7));
    assert.match(st.currentCreditKey ?? '', /^[0-9a-f]{12}$/);
    assert.ok(st.nextRotation);
    const files = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.equal(files.size, 3);
    // every file is envelope-encrypted under the local KEK the operator created, and opens
    const kekSecret = await cluster.secret(ns, 'main-kek');
    const kek = new LocalKeyEncryptionKey('main-kek', Buffer.from(kekSecret!.data![LOCAL_KEK_DATA_KEY]!, 'base64').toString('utf8'));
    for (const f of files.values()) {
      assert.equal(f.privateKey.type, 'envelope');
      const key = await openSigningKeyFile(f, kek);
      assert.equal(toHex(tokenKeyId(key)), f.keyId);
    }
    const cm = await cluster.configMapData(ns, 'main-directory');
    const dir = parseIssuerDirectory(cm!['directory.json']);
    assert.equal(dir['issuer-request-uri'], '/token-request');
    assert.equal(dir['token-keys'].length, 3);
    const secret = await cluster.secret(ns, 'main-signing-keys');
    assert.deepEqual(secret!.metadata!.ownerReferences ?? [], [], 'the keys outlive the issuer (keysOutliveIssuer.test.ts)');
  });

  it('kubectl get tokenissuers shows Ready, the credit key id, the epoch, the next rotation and the age', async () => {
    const r = await env.kubectl(['get', 'tokenissuers', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    const [header, row] = r.stdout.trim().split('\n');
    assert.match(header!, /^NAME\s+READY\s+CREDIT KEY\s+EPOCH\s+NEXT ROTATION\s+AGE$/);
    const st = (await cluster.issuer(ns, 'main')).status!;
    assert.match(row!, new RegExp(`^main\\s+True\\s+${st.currentCreditKey}\\s+${st.currentEpoch}\\s+${st.nextRotation}\\s+\\d+s$`));
    const wide = await env.kubectl(['get', 'ti', 'main', '-n', ns, '-o', 'wide']);
    assert.match(wide.stdout, /PAUSED\s+FAILURES\s+MESSAGE/);
    assert.ok(wide.stdout.includes(st.conditions!.find((c) => c.type === 'Ready')!.message.slice(0, 40)), `-o wide shows the Ready message:\n${wide.stdout}`);
  });

  it('kubectl annotate rotate=now publishes a new credit key, retires the old one, and is carried out once', async () => {
    const before = (await cluster.issuer(ns, 'main')).status!;
    const oldCredit = before.keys!.find((k) => k.purpose === 'credit' && k.state === 'Active')!;
    const r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=now`, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    const after = await waitFor('new credit key active', async () => {
      const s = (await cluster.issuer(ns, 'main')).status;
      return s?.currentCreditKey && s.currentCreditKey !== before.currentCreditKey ? s : undefined;
    });
    const credit = after.keys!.filter((k) => k.purpose === 'credit');
    assert.equal(credit.length, 2);
    const old = credit.find((k) => k.keyId === oldCredit.keyId)!;
    assert.equal(old.state, 'RedeemOnly', 'the old key verifies but no longer signs');
    assert.equal(old.redemptionEnd, oldCredit.redemptionEnd, 'its redemption window is untouched');
    const issuer = await cluster.issuer(ns, 'main');
    const ann = issuer.metadata.annotations![ROTATE_ANNOTATION]!;
    assert.match(ann, /^\d{4}-\d{2}-\d{2}T/, '"now" was recorded as a fixed time');
    const secret = await cluster.secret(ns, 'main-signing-keys');
    assert.equal(secret!.metadata!.annotations![HANDLED_ROTATION_ANNOTATION], new Date(Date.parse(ann)).toISOString());
    // more reconciles (resync) do not rotate again
    await new Promise((res) => setTimeout(res, 2_500));
    assert.equal((await cluster.keyFiles(ns, 'main-signing-keys')).size, 4);
    const describe = await env.kubectl(['describe', 'tokenissuer', 'main', '-n', ns]);
    assert.match(describe.stdout, /RotationRequested/);
    assert.match(describe.stdout, /KeyRotated/);
  });

  it('spec.paused (kubectl patch) stops rotations until it is cleared', async () => {
    let r = await env.kubectl(['patch', 'tokenissuer', 'main', '-n', ns, '--type', 'merge', '-p', '{"spec":{"paused":true}}']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('Paused', async () => (await cluster.issuer(ns, 'main')).status?.conditions?.find((c) => c.type === 'Rotating' && c.reason === 'Paused'));
    r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=${new Date().toISOString()}`, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    // Not silently queued: the status and a Warning event say it waits for paused=false.
    const rot = await waitFor('Rotating says the request waits', async () => (await cluster.issuer(ns, 'main')).status?.conditions?.find((c) => c.type === 'Rotating' && /is not carried out while spec.paused is true/.test(c.message)));
    assert.equal(rot.reason, 'Paused');
    await waitFor('RotationPaused event', async () => (await cluster.events(ns)).some((e) => e.type === 'Warning' && e.reason === 'RotationPaused'));
    await new Promise((res) => setTimeout(res, 2_500));
    assert.equal((await cluster.keyFiles(ns, 'main-signing-keys')).size, 4, 'nothing generated while paused');
    assert.equal((await cluster.events(ns)).filter((e) => e.reason === 'RotationPaused').length, 1, 'reported once, not on every reconcile');
    r = await env.kubectl(['patch', 'tokenissuer', 'main', '-n', ns, '--type', 'merge', '-p', '{"spec":{"paused":false}}']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('rotation after resume', async () => (await cluster.keyFiles(ns, 'main-signing-keys')).size === 5);
  });

  it('kubectl annotate rotate=compromised: a new key signs at once for every purpose; with revoke-redemption the old keys go', async () => {
    await waitFor('resumed and idle', async () => (await cluster.issuer(ns, 'main')).status?.conditions?.find((c) => c.type === 'Rotating' && c.reason !== 'Paused'));
    // From the Secret, not the status (written after it): every key that can sign now.
    const t0 = Date.now();
    const old = [...(await cluster.keyFiles(ns, 'main-signing-keys')).values()].filter((f) => Date.parse(f.issuanceEnd) > t0);
    let r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=compromised`, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    const rotatedAt = await waitFor('request carried out', async () => {
      const ann = (await cluster.issuer(ns, 'main')).metadata.annotations?.[ROTATE_ANNOTATION] ?? '';
      const handled = (await cluster.secret(ns, 'main-signing-keys'))?.metadata?.annotations?.[HANDLED_ROTATION_ANNOTATION];
      return /^compromised:/.test(ann) && handled === new Date(Date.parse(ann.slice('compromised:'.length))).toISOString() ? Date.parse(handled) : undefined;
    });
    const after = await waitFor('status of the emergency rotation', async () => {
      const st = (await cluster.issuer(ns, 'main')).status;
      return st?.keys?.some((k) => k.purpose === 'credit' && k.state === 'Active' && Date.parse(k.notBefore) >= rotatedAt - 1000) ? st : undefined;
    });
    for (const purpose of ['credit', 'permanent', 'transient'] as const) {
      const active = after.keys!.filter((k) => k.purpose === purpose && k.state === 'Active');
      assert.equal(active.length, 1, `one ${purpose} key signs`);
      assert.ok(!old.some((o) => o.keyId === active[0]!.keyId), `the ${purpose} key that signs is new`);
    }
    for (const o of old) {
      const k = after.keys!.find((x) => x.keyId === o.keyId);
      // Successors that never signed are withdrawn; every key that signed still verifies.
      if (Date.parse(o.notBefore) <= t0) assert.equal(k?.state, 'RedeemOnly', `old ${o.purpose} key still verifies`);
    }
    const ev = await cluster.events(ns);
    assert.ok(ev.some((e) => e.type === 'Warning' && e.reason === 'EmergencyKeyRotated'));

    // Second emergency, now also revoking redemption of every older key.
    const live = (await cluster.keyFiles(ns, 'main-signing-keys')).size;
    r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=compromised`, 'llmtor.dev/revoke-redemption=true', '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('old keys revoked', async () => (await cluster.keyFiles(ns, 'main-signing-keys')).size === 3, 20_000);
    assert.ok(live > 3);
    const st = (await cluster.issuer(ns, 'main')).status!;
    assert.ok(st.keys!.filter((k) => k.state === 'Active').length === 3);
    assert.ok((await cluster.events(ns)).some((e) => e.reason === 'KeyRevoked'));
    r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, 'llmtor.dev/revoke-redemption-']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('NEXT ROTATION is empty while no key exists (the key-encryption key is not available)', async () => {
    await applyIssuer(env, ns, 'nokeys', { keyProtection: { azureKeyVault: { vaultUrl: 'https://127.0.0.1:9', keyName: 'k' } } });
    const st = await waitFor('failure status', async () => {
      const s = (await cluster.issuer(ns, 'nokeys')).status;
      return s?.failedAttempts ? s : undefined;
    });
    assert.equal(st.nextRotation, undefined);
    const r = await env.kubectl(['get', 'ti', 'nokeys', '-n', ns]);
    // Empty CREDIT KEY and NEXT ROTATION cells: READY, then straight the EPOCH and the AGE.
    assert.match(r.stdout.trim().split('\n')[1]!, /^nokeys\s+False\s+\d{4}-\d{2}\s+\d+s$/);
    await env.kubectl(['delete', 'ti', 'nokeys', '-n', ns]);
  });

  it('the API server rejects invalid specs with the schema message (durations, enums, relations)', async () => {
    const bad = async (spec: unknown) => {
      const doc = JSON.stringify({ apiVersion: 'llmtor.dev/v1alpha1', kind: 'TokenIssuer', metadata: { name: 'bad', namespace: ns }, spec });
      const r = await env.kubectl(['apply', '-f', '-'], { input: doc });
      assert.notEqual(r.code, 0);
      return r.stderr;
    };
    // One clear message per bad field: no pattern dump, no CEL type-conversion errors, no unrelated rules.
    const one = (stderr: string, field: string, msg: RegExp) => {
      assert.ok(stderr.includes(`${field}: Invalid value`), stderr);
      assert.match(stderr, msg);
      assert.doesNotMatch(stderr, /type conversion|should match|\n\* .*\n\* /, stderr);
    };
    one(await bad({ credit: { rotationPeriod: '30d' } }), 'spec.credit.rotationPeriod', /must be a duration such as 720h, 1h30m or 90s \(units h, m, s, ms; no days, no sign\)/);
    one(await bad({ credit: { rotationPeriod: '-1h' } }), 'spec.credit.rotationPeriod', /must be a duration such as/);
    one(await bad({ permanent: { lifetime: '1s' } }), 'spec.permanent.lifetime', /must be longer than credit.publishAhead/);
    one(await bad({ credit: { rotationPeriod: '30s' } }), 'spec.credit.rotationPeriod', /rotationPeriod must be at least 1m/);
    one(await bad({ credit: { rotationPeriod: '48h', issuanceWindow: '48h', redemptionGrace: '720h' } }), 'spec.credit.redemptionGrace', /at most 4 x rotationPeriod/);
    one(await bad({ transient: { grace: '8760h' } }), 'spec.transient.grace', /at most 2016h/);
    // The operator's own check (zod) agrees with the CRD on each of these.
    for (const spec of [{ credit: { rotationPeriod: '30d' } }, { credit: { rotationPeriod: '-1h' } }, { permanent: { lifetime: '1s' } }, { credit: { rotationPeriod: '30s' } }, { credit: { rotationPeriod: '48h', issuanceWindow: '48h', redemptionGrace: '720h' } }, { transient: { grace: '8760h' } }]) {
      assert.throws(() => issuerPolicy('bad', spec), SpecError, JSON.stringify(spec));
    }
    assert.match(await bad({ transient: { epoch: 'Weekly' } }), /Unsupported value: "Weekly"/);
    assert.match(await bad({ credit: { rotationPeriod: '720h', issuanceWindow: '24h' } }), /issuanceWindow must be at least rotationPeriod/);
    assert.match(await bad({ keyProtection: { azureKeyVault: { vaultUrl: 'https://v.vault.azure.net', keyName: 'k' }, local: {} } }), /either azureKeyVault or local/);
  });
});
