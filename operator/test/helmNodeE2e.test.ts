/**
 * The Helm chart end to end on a real single-node cluster (@llmtor/devtools/kubeNode: containerd,
 * kubelet, scheduler, controller-manager, kube-proxy, CoreDNS) with the images built from this tree
 * (scripts/images/build.mjs): helm install with the bundled Redis and 2 redemption replicas, every
 * pod Ready; a client issues through the issuance Service and redeems (streamed) through the
 * redemption Service and, with the onion front, through the onion address over the private Tor
 * network, whose relays listen on an address on the pod bridge; rotation under load; a redemption
 * pod deleted while redeeming; helm upgrade rolls the pods; helm uninstall keeps the signing keys.
 * Each stage prints its time. Needs root; what is missing is printed, never skipped silently.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SocksProxyAgent } from 'socks-proxy-agent';
import {
  decodeBatchTokenResponse,
  decodeToken,
  defaultChallenge,
  encodeBatchTokenRequest,
  epochOf,
  formatAuthorization,
  fromBase64Url,
  ISSUER_DIRECTORY_PATH,
  MEDIA_TYPE_BATCH_REQUEST,
  parseIssuerDirectory,
  toBase64Url,
  tokenKeyId,
  toHex,
  type DirectoryKey,
  type KeyPurpose,
} from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import type { KubeNode } from '@llmtor/devtools/kubeNode';
import type { TorNetwork } from '@llmtor/devtools/torNetwork';
import { STAND_IN_TEXT } from '@llmtor/proxy/testing';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = `${REPO}helm/llmtor`;
const NS = 'llmtor-e2e';
const ISSUER = 'llmtor.e2e';
const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef0123456789';
const HOST_NETNS = 'llmtor-e2e-host';
const IMAGES = ['proxy', 'operator', 'redis', 'tor', 'onionbalance'] as const;
const RATE_LIMIT = { requests: 100_000, windowSeconds: 60 };

interface Reply {
  status: number;
  body: string;
}

/** One HTTP exchange (through a SOCKS agent for the onion), bounded. */
function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; agent?: http.Agent; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // A connection per request (no keep-alive pool): kube-proxy balances connections, not requests.
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body === undefined ? undefined : Buffer.from(opts.body));
  });
}

/** The streamed answer's text, from its Server-Sent Events. */
function sseText(body: string): string {
  let text = '';
  for (const line of Buffer.from(body, 'latin1').toString('utf8').split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    text += (JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content ?? '';
  }
  return text;
}

/** A client as the docs describe it: account, abuse tokens, blinded batch issuance, streamed redemption. */
class Client {
  private readonly clients = new Map<string, TokenClient>();
  accountKey = '';
  abuseHeader = '';
  constructor(readonly issuanceUrl: string) {}

  async directory(): Promise<DirectoryKey[]> {
    const r = await call(`${this.issuanceUrl}${ISSUER_DIRECTORY_PATH}`);
    assert.equal(r.status, 200, `directory: ${r.status} ${r.body.slice(0, 200)}`);
    return parseIssuerDirectory(r.body)['token-keys'];
  }

  static issuing(keys: DirectoryKey[], purpose: KeyPurpose, epoch?: string): DirectoryKey | undefined {
    const now = Date.now();
    return keys
      .filter((k) => k.purpose === purpose && (k['not-before'] ?? 0) * 1000 <= now && now < (k['issuance-not-after'] ?? Infinity) * 1000 && (epoch === undefined || k.epoch === epoch))
      .sort((a, b) => (b['not-before'] ?? 0) - (a['not-before'] ?? 0))[0];
  }

  async start(credits: number): Promise<void> {
    const created = await call(`${this.issuanceUrl}/v1/accounts`, { method: 'POST' });
    assert.equal(created.status, 201, created.body);
    this.accountKey = (JSON.parse(created.body) as { account_key: string }).account_key;
    const grant = await call(`${this.issuanceUrl}/v1/admin/grants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ account_key: this.accountKey, credits, reason: 'e2e' }) });
    assert.equal(grant.status, 201, grant.body);
    const keys = await this.directory();
    const [p, t] = [Client.issuing(keys, 'permanent'), Client.issuing(keys, 'transient', epochOf(new Date()))];
    assert.ok(p && t, 'the directory has a permanent and a transient key');
    this.abuseHeader = `permanent=${toBase64Url((await this.issue(p, 1))[0]!)}, transient=${toBase64Url((await this.issue(t, 1))[0]!)}`;
  }

  async issue(key: DirectoryKey, n: number): Promise<Uint8Array[]> {
    const spki = key['token-key'];
    let client = this.clients.get(spki);
    if (!client) this.clients.set(spki, (client = await TokenClient.forKey(spki)));
    const blinded = await Promise.all(Array.from({ length: n }, () => client.createRequest(defaultChallenge(ISSUER))));
    const r = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(`${this.issuanceUrl}/token-request`, { method: 'POST', agent: false, timeout: 30_000, headers: { authorization: `Bearer ${this.accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST, 'idempotency-key': `e2e-${Date.now()}-${Math.random().toString(36).slice(2)}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      });
      req.on('timeout', () => req.destroy(new Error('issuance timeout')));
      req.on('error', reject);
      req.end(Buffer.from(encodeBatchTokenRequest(blinded.map((b) => b.request))));
    });
    if (r.status !== 200) throw new Error(`issuance: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
    const answers = decodeBatchTokenResponse(new Uint8Array(r.body));
    const tokens: Uint8Array[] = [];
    for (let i = 0; i < answers.length; i++) if (answers[i]) tokens.push(await client.finalize(blinded[i]!.pending, answers[i]!));
    if (tokens.length !== n) throw new Error(`issuance: ${n - tokens.length} of ${n} batch entries absent`);
    return tokens;
  }

  async creditTokens(n: number): Promise<Uint8Array[]> {
    const key = Client.issuing(await this.directory(), 'credit');
    if (!key) throw new Error('no credit key signs now');
    return this.issue(key, n);
  }

  /** Streamed chat completion with one token; ok = 200 and the whole stand-in text. */
  async redeem(url: string, token: Uint8Array, agent?: http.Agent): Promise<{ ok: boolean; status: number; detail: string; finished: boolean }> {
    const r = await call(`${url}/v1/chat/completions`, {
      method: 'POST',
      agent,
      timeoutMs: 60_000,
      headers: { authorization: formatAuthorization([token]), 'llmtor-abuse': this.abuseHeader, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llmtor-stand-in', stream: true, messages: [{ role: 'user', content: `e2e ${Math.random()}` }] }),
    });
    const ok = r.status === 200 && sseText(r.body) === STAND_IN_TEXT;
    return { ok, status: r.status, detail: ok ? '' : r.body.slice(0, 300), finished: r.body.includes('data: [DONE]') };
  }
}

const stageTimes: Array<[string, number]> = [];
async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    stageTimes.push([name, Date.now() - t0]);
    console.log(`      [stage] ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 1_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('Helm chart on a real single-node cluster (install, issue/redeem, onion front, rotation, pod loss, upgrade, uninstall)', function () {
  this.timeout(120_000);
  let node: KubeNode | undefined;
  let network: TorNetwork | undefined;
  let helm = '';
  const images: Record<string, string> = {};
  let withOnion = false;
  let onionNote = '';
  let frontAddress = '';
  let hostIp = '';
  let valuesFile = '';
  let work = '';
  const relays: Array<{ close(): Promise<void> }> = [];
  let issuanceUrl = '';
  let redemptionUrl = '';
  let client: Client;

  const kubectl = async (args: string[], input?: string) => {
    const r = await node!.kubectl(['-n', NS, ...args], input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const helmRun = (args: string[]) => run(helm, [...args, '--kubeconfig', node!.kubeconfigPath, '--namespace', NS], { maxBuffer: 1 << 24, timeout: 600_000 });
  const podsReady = async () => {
    const pods = JSON.parse(await kubectl(['get', 'pods', '-o', 'json'])) as { items: Array<{ metadata: { name: string; deletionTimestamp?: string }; status: { phase: string; conditions?: Array<{ type: string; status: string }> } }> };
    const live = pods.items.filter((p) => !p.metadata.deletionTimestamp);
    const notReady = live.filter((p) => !p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    return live.length > 0 && notReady.length === 0 ? live.map((p) => p.metadata.name) : false;
  };
  const metricOf = async (podIp: string) => {
    const relay = await node!.exposeToHost(podIp, 8080);
    try {
      const r = await call(`http://127.0.0.1:${relay.port}/metrics`);
      return Number(/^llmtor_redemption_tokens_spent_total (\d+)/m.exec(r.body)?.[1] ?? 0);
    } finally {
      await relay.close();
    }
  };
  const redemptionPods = async () => (JSON.parse(await kubectl(['get', 'pods', '-l', 'app.kubernetes.io/component=redemption', '-o', 'json'])) as { items: Array<{ metadata: { name: string; uid: string }; status: { podIP?: string } }> }).items;

  before(async function () {
    this.timeout(1_800_000);
    const missing = (why: string) => {
      console.log(`      SKIPPED: ${why}`);
      this.skip();
    };
    if (process.getuid?.() !== 0) return missing('needs root (the kube node: network namespace, mounts, cgroups)');
    try {
      helm = (await run('bash', [`${REPO}scripts/install-helm.sh`], { timeout: 900_000 })).stdout.trim().split('\n').at(-1)!;
    } catch (e) {
      return missing(`helm: ${(e as Error).message.split('\n')[0]}`);
    }
    // Images from this tree (scripts/images/build.mjs caches what does not change).
    await stage('build images', async () => {
      const out = process.env.LLMTOR_IMAGES_DIR ?? join(REPO, 'dist/images');
      const builder = join(REPO, 'scripts/images/build.mjs');
      if (!process.env.LLMTOR_IMAGES_DIR && existsSync(builder)) await run(process.execPath, [builder, '--out', out], { timeout: 1_200_000, maxBuffer: 1 << 26 });
      const listFile = join(out, 'images.json');
      if (!existsSync(listFile)) return;
      for (const i of (JSON.parse(readFileSync(listFile, 'utf8')) as { images: Array<{ component: string; archive: string }> }).images) images[i.component] = join(out, i.archive);
    });
    const absent = IMAGES.filter((c) => !images[c]);
    if (['proxy', 'operator', 'redis'].some((c) => absent.includes(c as never))) return missing(`images not built: ${absent.join(', ')} (scripts/images/build.mjs, or LLMTOR_IMAGES_DIR)`);
    withOnion = !absent.includes('tor') && !absent.includes('onionbalance');
    if (!withOnion) onionNote = `no onion front: images ${absent.join(', ')} not built`;

    const { startKubeNode } = await import('@llmtor/devtools/kubeNode');
    try {
      node = await stage('start the node', () => startKubeNode({ log: (l) => process.env.LLMTOR_E2E_VERBOSE && console.log(`      ${l}`) }));
    } catch (e) {
      console.log((e as Error).message);
      return missing('the kube node did not start (above)');
    }
    await stage('import images', async () => {
      for (const c of IMAGES) if (images[c]) await node!.importImage(images[c]!);
    });

    work = mkdtempSync(join(tmpdir(), 'llmtor-e2e-'));
    if (withOnion) {
      await stage('private Tor network on the pod bridge', async () => {
        // The host's network namespace, named, gets a veth on the pod bridge: the relays listen
        // there, pods reach them, and the test's own tor client stays on the host.
        // A run killed before its cleanup leaves the name behind (only a name: the namespace is the host's).
        await run('ip', ['netns', 'delete', HOST_NETNS]).catch(() => undefined);
        await run('ip', ['netns', 'attach', HOST_NETNS, String(process.pid)]); // this process's (the host's) namespace
        hostIp = await node!.attachNetns(HOST_NETNS);
        const { startTorNetwork } = await import('@llmtor/devtools/torNetwork');
        // Onion traffic only; an exit off loopback carries nothing to 127.0.0.1 (docs/tor-test-network.md).
        network = await startTorNetwork({ relayAddress: hostIp, exitProbe: false, timeoutMs: 180_000 });
      });
    }
    await node!.kubectl(['create', 'namespace', NS]);
    await kubectl(['create', 'secret', 'generic', 'llmtor-proxy-env', `--from-literal=ADMIN_TOKEN=${ADMIN_TOKEN}`, `--from-literal=LLMTOR_ACCOUNT_PEPPER=${'e2e-pepper-'.padEnd(64, 'x')}`]);
    const values: Record<string, unknown> = {
      image: { pullPolicy: 'Never' },
      operator: { replicas: 1, resources: { requests: { cpu: '10m', memory: '64Mi' } } },
      // A forced rotation's successor takes over publishAhead later: long enough for the kubelet to
      // bring the new key into every pod's Secret volume first, short enough for the test.
      tokenIssuer: { spec: { credit: { rotationPeriod: '720h', issuanceWindow: '744h', redemptionGrace: '720h', publishAhead: '90s' } } },
      proxy: {
        issuerName: ISSUER,
        existingSecret: 'llmtor-proxy-env',
        // One pseudonym makes hundreds of requests a minute here (the default allows 120). Its
        // account is funded by an admin grant, which must count as a purchase for abuse tokens.
        config: { issuance: { grantsCountAsPurchase: true }, redemption: { rateLimit: RATE_LIMIT, providers: { 'local-stand-in': { kind: 'local-stand-in' } }, models: [{ id: 'llmtor-stand-in', provider: 'local-stand-in', priceCredits: 1 }] } },
        issuance: { replicas: 1, resources: { requests: { cpu: '10m', memory: '64Mi' } } },
        redemption: { replicas: 2, resources: { requests: { cpu: '10m', memory: '64Mi' } } },
      },
      redis: { bundled: { enabled: true, persistence: { enabled: false }, resources: { requests: { cpu: '10m', memory: '32Mi' } } } },
    };
    if (withOnion) {
      const { execFileSync } = await import('node:child_process');
      frontAddress = execFileSync(process.execPath, [`${CHART}/files/onion-keys.mjs`, 'frontend', join(work, 'front')], { encoding: 'utf8' }).trim();
      await kubectl(['create', 'secret', 'generic', 'llmtor-onion', `--from-file=${join(work, 'front')}`]);
      values.tor = { enabled: true, hiddenServiceSecret: 'llmtor-onion', extraTorrc: ['TestingTorNetwork 1', 'ClientUseIPv6 0', ...network!.dirAuthorityLines].join('\n'), onionbalance: { testnet: true } };
    }
    valuesFile = join(work, 'values.json');
    writeFileSync(valuesFile, JSON.stringify(values));
  });

  after(async function () {
    this.timeout(180_000);
    console.log(`      stage times: ${stageTimes.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join('; ')}`);
    for (const r of relays) await r.close().catch(() => undefined);
    await network?.stop();
    await node?.stop();
    if (hostIp) await run('ip', ['netns', 'delete', HOST_NETNS]).catch(() => undefined); // only the name; the host's namespace stays
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('helm install (bundled Redis, 2 redemption replicas, onion front when its images exist): every pod Ready', async function () {
    this.timeout(600_000);
    await stage('helm install + every pod Ready', async () => {
      await helmRun(['install', 'llmtor', CHART, '--values', valuesFile]);
      await until('every pod Ready', podsReady, 480_000, 2_000);
    });
    const svc = async (name: string) => (JSON.parse(await kubectl(['get', 'svc', name, '-o', 'json'])) as { spec: { clusterIP: string } }).spec.clusterIP;
    const iss = await node!.exposeToHost(await svc('llmtor-issuance'), 80);
    const red = await node!.exposeToHost(await svc('llmtor-redemption'), 80);
    relays.push(iss, red);
    issuanceUrl = `http://127.0.0.1:${iss.port}`;
    redemptionUrl = `http://127.0.0.1:${red.port}`;
    const pods = await redemptionPods();
    assert.equal(pods.length, 2);
  });

  it('issues through the issuance Service and redeems (streamed) through the redemption Service; requests reach both replicas', async function () {
    assert.ok(issuanceUrl, 'installed');
    this.timeout(300_000);
    await stage('issue + redeem through the Services', async () => {
      client = new Client(issuanceUrl);
      await client.start(5_000);
      const pods = await redemptionPods();
      for (let i = 0; i < 30; i++) {
        const [token] = await client.creditTokens(1);
        const r = await client.redeem(redemptionUrl, token!);
        assert.ok(r.ok, `redemption ${i}: ${r.status} ${r.detail}`);
        if (i >= 3) {
          const counts: number[] = [];
          for (const p of pods) counts.push(await metricOf(p.status.podIP!)); // one relay at a time
          if (counts.every((c) => c > 0)) return;
        }
      }
      assert.fail('30 redemptions through the Service did not reach both replicas');
    });
  });

  it('redeems through the onion address (Onionbalance over both pods\' backend onions) over the private Tor network', async function () {
    if (!withOnion) {
      console.log(`      SKIPPED: ${onionNote}`);
      this.skip();
    }
    this.timeout(420_000);
    await stage('onion front reachable + redemptions over Tor', async () => {
      const pods = await redemptionPods();
      const before: number[] = [];
      for (const p of pods) before.push(await metricOf(p.status.podIP!));
      let n = 0;
      // A front descriptor built before Onionbalance fetched every backend lists some pods only,
      // and the client would cache it: wait for one from both, then for its upload (every ~20 s).
      await until('Onionbalance builds the front from both backends', async () => /intros from 2 instances/.test(await kubectl(['logs', 'deploy/llmtor-onionbalance', '-c', 'onionbalance'])), 300_000, 3_000);
      await new Promise((r) => setTimeout(r, 25_000));
      await until(`a redemption through ${frontAddress}`, async () => {
        const [token] = await client.creditTokens(1);
        const r = await client.redeem(`http://${frontAddress}`, token!, new SocksProxyAgent(network!.socksUrl(), { timeout: 30_000 }));
        return r.ok;
      }, 300_000, 5_000);
      for (; n < 20; n++) {
        const after: number[] = [];
        for (const p of pods) after.push(await metricOf(p.status.podIP!));
        if (after.every((c, i) => c > before[i]!)) break;
        const [token] = await client.creditTokens(1);
        const r = await client.redeem(`http://${frontAddress}`, token!, new SocksProxyAgent(network!.socksUrl(), { timeout: 30_000 }));
        assert.ok(r.ok, `onion redemption ${n}: ${r.status} ${r.detail}`);
      }
      assert.ok(n < 20, 'onion redemptions reached both pods');
    });
  });

  it('kubectl annotate tokenissuer main llmtor.dev/rotate=now while a client keeps issuing and redeeming: 0 failed requests, the pods pick up the new key', async function () {
    assert.ok(client, 'issued before');
    this.timeout(300_000);
    await stage('rotation under load', async () => {
      const keyId = (k: DirectoryKey) => toHex(tokenKeyId(fromBase64Url(k['token-key'])));
      const oldKey = keyId(Client.issuing(await client.directory(), 'credit')!);
      const failures: string[] = [];
      let rounds = 0;
      let newKeyRedeemed = false;
      let stop = false;
      // Tokens come in batches of 10 (issuance allows 120 requests a minute per account).
      const pool: Uint8Array[] = [];
      const loop = (async () => {
        while (!stop) {
          try {
            if (pool.length === 0) pool.push(...(await client.creditTokens(10)));
            const token = pool.shift();
            const r = await client.redeem(redemptionUrl, token!);
            rounds++;
            await new Promise((res) => setTimeout(res, 200)); // a steady client, not a flood
            if (!r.ok) failures.push(`${r.status} ${r.detail}`);
            else if (toHex(decodeToken(token!).tokenKeyId) !== oldKey) newKeyRedeemed = true;
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
      })();
      await until('3 rounds before the rotation', async () => rounds >= 3, 60_000, 200);
      await kubectl(['annotate', 'tokenissuer', 'main', 'llmtor.dev/rotate=now', '--overwrite']);
      const successor = await until('the successor in the issuance directory', async () => (await client.directory()).filter((k) => k.purpose === 'credit').map(keyId).find((id) => id !== oldKey), 120_000, 1_000);
      // Every redemption pod loads it (kubelet volume update, the proxy's reload) before it signs.
      for (const pod of await redemptionPods()) {
        const relay = await node!.exposeToHost(pod.status.podIP!, 8080);
        try {
          await until(`${pod.metadata.name} lists the successor`, async () => {
            const keys = parseIssuerDirectory((await call(`http://127.0.0.1:${relay.port}${ISSUER_DIRECTORY_PATH}`)).body)['token-keys'];
            return keys.some((k) => keyId(k) === successor);
          }, 120_000, 1_000);
        } finally {
          await relay.close();
        }
      }
      await until('a token of the new key issued and redeemed through the pods', async () => newKeyRedeemed || failures.length > 0, 240_000, 500);
      stop = true;
      await loop;
      assert.deepEqual(failures, [], `${rounds} rounds`);
      assert.ok(newKeyRedeemed);
    });
  });

  it('a redemption pod deleted while redeeming: no token accepted twice, no request lost without an error', async function () {
    assert.ok(client, 'issued before');
    this.timeout(300_000);
    await stage('pod deleted while redeeming', async () => {
      const tokens = await client.creditTokens(40);
      const accepted: Uint8Array[] = [];
      const errors: string[] = [];
      const silent: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < tokens.length) {
          const token = tokens[next++]!;
          try {
            const r = await client.redeem(redemptionUrl, token);
            if (r.ok) accepted.push(token);
            // A failure the client can tell: an error status, or a stream cut before its [DONE].
            else if (r.status !== 200 || !r.finished) errors.push(`HTTP ${r.status}${r.status === 200 ? ' cut' : ''}`);
            else silent.push(r.detail);
          } catch (e) {
            errors.push((e as Error).message); // a broken connection: the client knows
          }
        }
      };
      const workers = [worker(), worker()];
      await until('some redemptions', async () => next >= 6, 60_000, 100);
      await kubectl(['delete', 'pod', 'llmtor-redemption-0', '--wait=false']);
      await Promise.all(workers);
      assert.deepEqual(silent, [], 'no answer that looks complete but is not');
      assert.ok(accepted.length > 0, 'redemptions went on through the other replica');
      // Each accepted token is spent: presenting it again (a new request) is refused.
      await until('both replicas Ready again', podsReady, 180_000, 2_000);
      for (const t of accepted) {
        const again = await client.redeem(redemptionUrl, t);
        assert.ok(!again.ok && again.status >= 400, `a spent token was accepted again (${again.status})`);
      }
      console.log(`      ${accepted.length} accepted, ${errors.length} errors (${[...new Set(errors)].join('; ').slice(0, 200)})`);
    });
  });

  it('helm upgrade with a changed provider config rolls the proxy pods; helm uninstall keeps the signing keys', async function () {
    assert.ok(issuanceUrl, 'installed');
    this.timeout(600_000);
    await stage('helm upgrade rolls the pods', async () => {
      const before = new Set((await redemptionPods()).map((p) => p.metadata.uid));
      const changed = join(work, 'changed.json');
      // Another provider entry (an upstream added): the config Secret's checksum changes.
      writeFileSync(changed, JSON.stringify({ proxy: { config: { redemption: { rateLimit: RATE_LIMIT, providers: { 'local-stand-in': { kind: 'local-stand-in' }, spare: { kind: 'local-stand-in' } }, models: [{ id: 'llmtor-stand-in', provider: 'local-stand-in', priceCredits: 1 }] } } } }));
      await helmRun(['upgrade', 'llmtor', CHART, '--values', valuesFile, '--values', changed]);
      await until('redemption pods replaced and Ready', async () => {
        const now = await redemptionPods();
        return now.length === 2 && now.every((p) => !before.has(p.metadata.uid)) && (await podsReady());
      }, 480_000, 2_000);
    });
    await stage('helm uninstall keeps the signing keys', async () => {
      await helmRun(['uninstall', 'llmtor', '--wait']);
      const secret = JSON.parse(await kubectl(['get', 'secret', 'main-signing-keys', '-o', 'json'])) as { data: Record<string, string> };
      assert.ok(Object.keys(secret.data).length > 0, 'the signing keys are still there');
      await kubectl(['get', 'tokenissuer', 'main']);
    });
  });
});
