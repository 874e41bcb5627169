import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { keyEntry, Keyring, parseIssuerDirectory, tokenKeyId, truncatedKeyId, type SigningKeyFile } from '@llmtor/protocol';
import { generateSigningKey } from '@llmtor/protocol/server';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { HANDLED_ROTATION_ANNOTATION, KubeClusterApi, ManualClock, OperatorMetrics, ROTATE_ANNOTATION, Reconciler, metadataOf, type ClusterApi } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

class Crash extends Error {}

/** The cluster adapter of a process that dies right before its `crashAt`-th write: that write and every later call fail. */
function crashingApi(inner: ClusterApi, crashAt: number): ClusterApi & { writes: number; crashed: boolean } {
  const state = { writes: 0, crashed: false };
  const wrap = <K extends keyof ClusterApi>(k: K, write: boolean) =>
    (async (...args: unknown[]) => {
      if (state.crashed) throw new Crash('process is dead');
      if (write && ++state.writes >= crashAt) {
        state.crashed = true;
        throw new Crash(`killed before write #${state.writes} (${k})`);
      }
      return (inner[k] as (...a: unknown[]) => Promise<unknown>)(...args);
    }) as ClusterApi[K];
  const api = {
    getIssuer: wrap('getIssuer', false),
    getSecret: wrap('getSecret', false),
    getConfigMap: wrap('getConfigMap', false),
    patchIssuerAnnotations: wrap('patchIssuerAnnotations', true),
    patchIssuerStatus: wrap('patchIssuerStatus', true),
    createSecret: wrap('createSecret', true),
    replaceSecret: wrap('replaceSecret', true),
    createConfigMap: wrap('createConfigMap', true),
    replaceConfigMap: wrap('replaceConfigMap', true),
    createEvent: wrap('createEvent', true),
  };
  return Object.defineProperties(api, {
    writes: { get: () => state.writes },
    crashed: { get: () => state.crashed },
  }) as ClusterApi & { writes: number; crashed: boolean };
}

async function converge(r: Reconciler, ns: string, name: string): Promise<void> {
  for (let i = 0; i < 6; i++) {
    const res = await r.reconcile(ns, name);
    if (res.outcome === 'ok' && res.requeueAfterMs !== 0) return;
  }
  throw new Error('did not converge in 6 reconciles');
}

function checkConsistent(files: Map<string, SigningKeyFile>, cm: Record<string, string> | undefined, now: number): Keyring {
  const ring = new Keyring([...files.values()].map((f) => keyEntry(metadataOf(f))));
  assert.deepEqual(ring.truncatedCollisions(now), []);
  assert.deepEqual(parseIssuerDirectory(cm!['directory.json']), ring.directory('/token-request', now), 'ConfigMap matches the Secret');
  return ring;
}

describe('crash at any point, then restart: the operator converges', function () {
  this.timeout(180_000);
  let env: KubeTestEnv;
  let cluster: Cluster;

  before(async function () {
    this.timeout(600_000);
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
  });

  it('a forced rotation interrupted before each of its writes is carried out exactly once after restart', async () => {
    const ns = await newNamespace(env, 'crash');
    const clock = new ManualClock(Date.parse('2026-07-03T10:00:00Z'));
    const healthy = new Reconciler({ api: new KubeClusterApi(kubeConfig(env)), clock });
    let crashPoints = 0;
    for (let crashAt = 1; ; crashAt++) {
      const name = `i${crashAt}`;
      await applyIssuer(env, ns, name, { keyProtection: { local: { secretName: 'shared-kek' } } }); // one KEK: RSA-3072 generation is slow
      await converge(healthy, ns, name);
      const before = await cluster.keyFiles(ns, `${name}-signing-keys`);
      const r = await env.kubectl(['annotate', 'tokenissuer', name, '-n', ns, `${ROTATE_ANNOTATION}=now`]);
      assert.equal(r.code, 0, r.stderr);
      clock.advance(1000);
      const api = crashingApi(new KubeClusterApi(kubeConfig(env)), crashAt);
      const dying = new Reconciler({ api, clock });
      for (let i = 0; i < 6 && !api.crashed; i++) await dying.reconcile(ns, name);
      clock.advance(1000);
      await converge(new Reconciler({ api: new KubeClusterApi(kubeConfig(env)), clock }), ns, name); // the restarted process
      const files = await cluster.keyFiles(ns, `${name}-signing-keys`);
      for (const id of before.keys()) assert.ok(files.has(id), `crash before write ${crashAt}: key ${id.slice(0, 12)} kept`);
      const credit = [...files.values()].filter((f) => f.purpose === 'credit');
      assert.equal(credit.length, 2, `crash before write ${crashAt}: exactly one forced rotation (got ${credit.length} credit keys)`);
      const issuer = await cluster.issuer(ns, name);
      const secret = await cluster.secret(ns, `${name}-signing-keys`);
      assert.equal(secret!.metadata!.annotations![HANDLED_ROTATION_ANNOTATION], issuer.metadata.annotations![ROTATE_ANNOTATION]);
      checkConsistent(files, await cluster.configMapData(ns, `${name}-directory`), clock.now());
      assert.equal(issuer.status!.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
      assert.equal(issuer.status!.keys!.length, 4);
      if (!api.crashed) break; // the dying process got through every write: all crash points covered
      crashPoints++;
    }
    assert.ok(crashPoints >= 5, `crash points covered: ${crashPoints}`);
    console.log(`      ${crashPoints} crash points covered`);
  });

  it('operator process killed with SIGKILL during forced rotations converges on restart without losing a key', async () => {
    const ns = await newNamespace(env, 'kill');
    const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
    let child: ChildProcess | undefined;
    const startChild = () => {
      child = spawn(process.execPath, [main], {
        env: { ...process.env, KUBECONFIG: env.kubeconfigPath, LLMTOR_OPERATOR_NAMESPACE: ns, POD_NAME: 'op-killed', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', RESYNC_MS: '1000', LEASE_DURATION_MS: '3000', RENEW_DEADLINE_MS: '2000', RETRY_PERIOD_MS: '200' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    };
    const kill = async () => {
      const c = child!;
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await gone;
      }
    };
    try {
      startChild();
      await applyIssuer(env, ns, 'main', {});
      await waitFor('first keys', async () => (await cluster.keyFiles(ns, 'main-signing-keys')).size === 3, 30_000);
      const everSeen = new Map<string, SigningKeyFile>();
      const remember = async () => {
        for (const [id, f] of await cluster.keyFiles(ns, 'main-signing-keys')) everSeen.set(id, f);
      };
      await remember();
      let last = '';
      for (let i = 0; i < 5; i++) {
        last = new Date(Date.now() - 1000 + i).toISOString();
        const r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=${last}`, '--overwrite']);
        assert.equal(r.code, 0, r.stderr);
        await new Promise((res) => setTimeout(res, 50 + Math.floor(Math.random() * 600)));
        await remember();
        await kill();
        await remember();
        startChild();
      }
      await waitFor('last request carried out', async () => (await cluster.secret(ns, 'main-signing-keys'))?.metadata?.annotations?.[HANDLED_ROTATION_ANNOTATION] === last, 30_000);
      await waitFor('Ready', async () => (await cluster.issuer(ns, 'main')).status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'), 30_000);
      await remember();
      const files = await cluster.keyFiles(ns, 'main-signing-keys');
      // Only a successor that never signed may go: a later request replaces it (withdrawn, no token under it).
      for (const [id, f] of everSeen) assert.ok(files.has(id) || Date.parse(f.notBefore) > Date.now(), `key ${id.slice(0, 12)} was dropped`);
      const credit = [...files.values()].filter((f) => f.purpose === 'credit').length;
      assert.ok(credit >= 2 && credit <= 6, `credit keys: ${credit} (the first, and at most one pending successor per request)`);
      await waitFor('ConfigMap consistent', async () => {
        checkConsistent(await cluster.keyFiles(ns, 'main-signing-keys'), await cluster.configMapData(ns, 'main-directory'), Date.now());
        return true;
      }, 10_000);
    } finally {
      if (child) await kill();
    }
  });

  it('a generated key whose truncated id is taken by a published key is discarded and regenerated', async () => {
    // Find two real keys with the same truncated key id (birthday bound: ~20 keys).
    const byTrunc = new Map<number, KeyObject>();
    let pair: [KeyObject, KeyObject] | undefined;
    while (!pair) {
      const k = await generateSigningKey();
      const t = truncatedKeyId(tokenKeyId(k));
      const other = byTrunc.get(t);
      if (other) pair = [other, k];
      else byTrunc.set(t, k);
    }
    const rest = [...byTrunc.values()].filter((k) => k !== pair![0]);
    const queue = [pair[0], pair[1], ...rest];
    const metrics = new OperatorMetrics();
    const ns = await newNamespace(env, 'collide');
    const clock = new ManualClock(Date.parse('2026-07-03T10:00:00Z'));
    const r = new Reconciler({ api: new KubeClusterApi(kubeConfig(env)), clock, metrics, generateKey: async () => queue.shift()! });
    await applyIssuer(env, ns, 'main', {});
    await converge(r, ns, 'main');
    const files = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.equal(files.size, 3);
    const ids = [...files.keys()];
    assert.ok(ids.includes(Buffer.from(tokenKeyId(pair[0])).toString('hex')));
    assert.ok(!ids.includes(Buffer.from(tokenKeyId(pair[1])).toString('hex')), 'the colliding key is not published');
    assert.equal(new Set(ids.map((id) => id.slice(-2))).size, 3);
    assert.equal((await metrics.truncatedIdCollisions.get()).values[0]!.value, 1);
  });
});
