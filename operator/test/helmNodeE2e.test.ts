/**
 * The Helm chart end to end on a real single-node cluster (@llmtor/devtools/kubeNode: containerd,
 * kubelet, scheduler, controller-manager, kube-proxy, CoreDNS) with the images built from this tree
 * (scripts/images/build.mjs): helm install with the bundled Redis and 2 redemption replicas, every
 * pod Ready; a client issues through the issuance Service and redeems (streamed) through the
 * redemption Service and, with the onion front, through the onion address over the private Tor
 * network, whose relays listen on an address on the pod bridge; rotation under load; a redemption
 * pod deleted while streams are in flight on it (every token accepted once, or its error reported);
 * the VS Code extension in code-server chatting through the onion address; helm upgrade rolls the
 * pods; helm uninstall keeps the signing keys. Each stage prints its time. Needs root; what is
 * missing is printed, never skipped silently.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
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
import { TorControl } from '@llmtor/devtools/torControl';
import type { TorNetwork } from '@llmtor/devtools/torNetwork';
import { waitFor } from './support/cluster.js';
import { LocalStandInUpstream, STAND_IN_TEXT } from '@llmtor/proxy/testing';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = `${REPO}helm/llmtor`;
const NS = 'llmtor-e2e';
const ISSUER = 'llmtor.e2e';
const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef0123456789';
const HOST_NETNS = 'llmtor-e2e-host';
const IMAGES = ['proxy', 'operator', 'redis', 'tor', 'onionbalance'] as const;
const RATE_LIMIT = { requests: 100_000, windowSeconds: 60 };
/** A claim left "in progress" by a killed pod may be taken over by a retry of the same request after this. */
const LEASE_SECONDS = 20;
/** The slow model's answer: 20 chunks 300 ms apart (6 s), so a pod can be deleted mid-stream. */
const SLOW = { model: 'llmtor-slow', chunks: 20, chunkDelayMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  /**
   * Streamed chat completion with one token; ok = 200 and the whole stand-in text. `content`
   * fixes the request (a retry of the same request sends the same body); `code` is the error's.
   */
  async redeem(url: string, token: Uint8Array, agent?: http.Agent, opts: { model?: string; content?: string } = {}): Promise<{ ok: boolean; status: number; detail: string; finished: boolean; code?: string }> {
    const r = await call(`${url}/v1/chat/completions`, {
      method: 'POST',
      agent,
      timeoutMs: 60_000,
      headers: { authorization: formatAuthorization([token]), 'llmtor-abuse': this.abuseHeader, 'content-type': 'application/json' },
      body: JSON.stringify({ model: opts.model ?? 'llmtor-stand-in', stream: true, messages: [{ role: 'user', content: opts.content ?? `e2e ${Math.random()}` }] }),
    });
    const ok = r.status === 200 && sseText(r.body) === STAND_IN_TEXT;
    return { ok, status: r.status, detail: ok ? '' : r.body.slice(0, 300), finished: r.body.includes('data: [DONE]'), code: /"code"\s*:\s*"([a-z_]+)"/.exec(r.body)?.[1] };
  }
}

/** The spent id of a token (proxy/src/redemption/tokenHashes.ts: SHA-256, hex). */
const spentHex = (token: Uint8Array) => createHash('sha256').update(token).digest('hex');
const tally = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

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

/** `waitFor` (support/cluster.ts), polling once a second unless told otherwise. */
function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 1_000): Promise<T> {
  return waitFor(what, fn, timeoutMs, everyMs);
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
  // The slow upstream, in this process; pods reach it through exposeToPods.
  const slow = new LocalStandInUpstream({ chunks: SLOW.chunks, chunkDelayMs: SLOW.chunkDelayMs, record: false });

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
  /** State of each token's entry in the redemption Redis's spent set: 'd' done, 'p' in progress, 'r' released for a retry. */
  const spentStates = async (tokens: Uint8Array[]): Promise<Map<string, string>> => {
    const secret = JSON.parse(await kubectl(['get', 'secret', 'llmtor-redis', '-o', 'json'])) as { data: Record<string, string> };
    const password = decodeURIComponent(new URL(Buffer.from(secret.data.REDEMPTION_REDIS_URL!, 'base64').toString('utf8')).password);
    const svc = JSON.parse(await kubectl(['get', 'svc', 'llmtor-redis-redemption', '-o', 'json'])) as { spec: { clusterIP: string } };
    const relay = await node!.exposeToHost(svc.spec.clusterIP, 6379);
    const redis = new Redis({ host: '127.0.0.1', port: relay.port, password, maxRetriesPerRequest: 2, lazyConnect: true });
    try {
      await redis.connect();
      // Layout of proxy/src/redemption/redisStore.ts with the chart's defaults (keyPrefix
      // llmtor:rdm:, 4 hex digits a bucket): bucket llmtor:rdm:s:{<4 hex>}:<day>, field = the next 8 bytes.
      const out = new Map<string, string>();
      for (const tok of tokens) {
        const id = spentHex(tok);
        for (const k of await redis.keys(`llmtor:rdm:s:{${id.slice(0, 4)}}:*`)) {
          const v = await redis.hgetBuffer(k, Buffer.from(id.slice(4, 20), 'hex'));
          if (v) out.set(id, v.subarray(0, 1).toString('latin1'));
        }
      }
      return out;
    } finally {
      redis.disconnect();
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

    const slowPort = Number(new URL((await slow.listen(0, '127.0.0.1')).url).port);
    const slowForPods = await node!.exposeToPods(slowPort);
    relays.push(slowForPods);
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
        network = await startTorNetwork({ relayAddress: hostIp, timeoutMs: 180_000 });
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
        // The slow model streams from the upstream in this process (pod deletion mid-stream).
        config: {
          issuance: { grantsCountAsPurchase: true },
          redemption: {
            rateLimit: RATE_LIMIT,
            inProgressLeaseSeconds: LEASE_SECONDS,
            providers: { 'local-stand-in': { kind: 'local-stand-in' }, slow: { kind: 'openai-compatible', baseUrl: `http://${slowForPods.host}:${slowForPods.port}/v1` } },
            models: [{ id: 'llmtor-stand-in', provider: 'local-stand-in', priceCredits: 1 }, { id: SLOW.model, provider: 'slow', priceCredits: 1 }],
          },
        },
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
    await slow.close();
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
      // Every redemption has a circuit of its own, so its intro point is picked anew from the front's
      // descriptor. That descriptor stays cached, though: if it lists intro points a backend has
      // since replaced, every request lands on the other pod until it is fetched again. So every 8
      // attempts the client forgets it (NEWNYM), as a new client would arrive with none.
      let after: number[] = [];
      for (; n < 24; n++) {
        after = [];
        for (const p of pods) after.push(await metricOf(p.status.podIP!));
        if (after.every((c, i) => c > before[i]!)) break;
        if (n > 0 && n % 8 === 0) {
          const ctl = await TorControl.connect(network!.controlPort, network!.cookiePath);
          try {
            await ctl.command('SIGNAL NEWNYM');
          } finally {
            ctl.close();
          }
          await new Promise((r) => setTimeout(r, 10_000)); // NEWNYM is rate-limited to one per 10 s
        }
        const [token] = await client.creditTokens(1);
        const r = await client.redeem(`http://${frontAddress}`, token!, new SocksProxyAgent(network!.socksUrl(), { timeout: 30_000 }));
        assert.ok(r.ok, `onion redemption ${n}: ${r.status} ${r.detail}`);
      }
      assert.ok(n < 24, `onion redemptions reached both pods (redemptions counted per pod, before → after: ${JSON.stringify(before)} → ${JSON.stringify(after)})`);
    });
  });

  it('the VS Code extension in code-server: account and tokens from the issuance Service, a streamed answer through the onion address', async function () {
    if (!withOnion) {
      console.log(`      SKIPPED: ${onionNote}`);
      this.skip();
    }
    assert.ok(client, 'the onion front answered before');
    this.timeout(600_000);
    const { codeServerBinary, startCodeServer } = await import('@llmtor/devtools/codeServer');
    const { chatWebview, launchChromium, privateNetworkTorrc, runPaletteCommand, CHROMIUM_PATH } = await import('@llmtor/devtools/codeServerUi');
    const vsix = join(REPO, 'vscode-extension/out/llmtor.vsix');
    const torDataDir = mkdtempSync(join(work, 'ext-tor-'));
    const { code, context, page } = await stage('code-server + Chromium started, extension installed', async () => {
      // `make test` builds the TypeScript only; the packaged extension comes from its own build
      // (the extension's tests run it later): built here when absent or older than its sources.
      const newest = (dir: string): number => readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0);
      const stale = !existsSync(vsix) || statSync(vsix).mtimeMs < Math.max(newest(join(REPO, 'vscode-extension/src')), newest(join(REPO, 'protocol/src')));
      if (stale) await run('npm', ['run', 'build', '-w', 'vscode-extension'], { cwd: REPO, timeout: 600_000, maxBuffer: 1 << 26 });
      assert.ok(existsSync(CHROMIUM_PATH), `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium)`);
      const server = await startCodeServer({
        binary: codeServerBinary({ install: true }),
        vsix: [vsix],
        settings: {
          'llmtor.issuerUrl': issuanceUrl,
          'llmtor.redemptionUrl': `http://${frontAddress}`,
          // The extension's own tor, a client of the private network whose relays are on the pod bridge.
          'llmtor.tor.source': 'binary',
          'llmtor.tor.path': 'tor',
          'llmtor.tor.dataDir': torDataDir,
          'llmtor.tor.extraTorrc': privateNetworkTorrc(join(network!.dataDirs.client, 'torrc')),
          'llmtor.wallet.batchSize': 3,
          'llmtor.wallet.directoryGapSeconds': 1,
          'llmtor.wallet.minAgeSeconds': 0,
          'llmtor.wallet.jitterSeconds': 0,
        },
      });
      return { code: server, ...(await launchChromium(mkdtempSync(join(work, 'chromium-')))) };
    });
    try {
      await stage('code-server: account, tokens, streamed answer over the onion front', async () => {
        await page.goto(code.workbenchUrl);
        await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
        await runPaletteCommand(page, 'LLM-Tor: Open Chat');
        const ui = chatWebview(page);
        await ui.locator('#tor-state.ready').waitFor({ timeout: 120_000 });
        await ui.locator('#create-account').click();
        const key = (await ui.locator('#account-key').textContent({ timeout: 30_000 }))?.trim() ?? '';
        assert.match(key, /^[\d ]{40,}$/);
        const grant = await call(`${issuanceUrl}/v1/admin/grants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ account_key: key, credits: 10, reason: 'e2e code-server' }) });
        assert.equal(grant.status, 201, grant.body);
        await ui.locator('#dismiss-key').click();
        await runPaletteCommand(page, 'LLM-Tor: Get Tokens Now');
        await ui.locator('#wallet', { hasText: '3 tokens (3 ready)' }).waitFor({ timeout: 120_000 });
        // The slow model: its answer arrives in 20 pieces over 6 s, from the upstream in this process.
        await ui.locator('#model option', { hasText: SLOW.model }).waitFor({ state: 'attached', timeout: 90_000 });
        await ui.locator('#model').selectOption(SLOW.model);
        const spentOnPods = async () => {
          let n = 0;
          for (const p of await redemptionPods()) n += await metricOf(p.status.podIP!); // one relay at a time
          return n;
        };
        const before = { spent: await spentOnPods(), upstream: slow.requests };
        await ui.locator('#prompt').fill('Hello from code-server, through the cluster.');
        await ui.locator('#prompt').press('Enter');
        const answer = ui.locator('.msg.assistant .content').last();
        const seen = new Set<string>();
        const deadline = Date.now() + 180_000;
        for (;;) {
          const text = (await answer.textContent().catch(() => '')) ?? '';
          if (text && !text.startsWith('Waiting for the answer')) seen.add(text);
          if ((await ui.locator('.msg.assistant.streaming').count()) === 0 && text.includes('not a language model')) break;
          if (Date.now() > deadline) assert.fail(`no complete answer; last text: ${JSON.stringify(text)}; errors: ${await ui.locator('.msg-error').allTextContents()}`);
          await page.waitForTimeout(50);
        }
        assert.equal(await ui.locator('.msg.assistant .msg-error').count(), 0);
        assert.ok(seen.size >= 3, `the answer streamed in (saw ${seen.size} distinct states)`);
        // It was answered by a redemption pod (a token spent there) from the slow upstream.
        assert.ok((await spentOnPods()) > before.spent, 'a redemption pod counted the spent token');
        assert.ok(slow.requests > before.upstream, 'the upstream got the prompt');
        await ui.locator('#wallet', { hasText: '2 tokens' }).waitFor({ timeout: 10_000 });
      });
    } finally {
      await context.close().catch(() => undefined);
      await code.stop();
    }
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

  it('a redemption pod deleted while streams are in flight on it: every token accepted once or its error reported, none accepted twice (spent set)', async function () {
    assert.ok(client, 'issued before');
    this.timeout(420_000);
    await stage('pod deleted while redeeming', async () => {
      const N = 24;
      const tokens = await client.creditTokens(N);
      const pod0 = (await redemptionPods()).find((p) => p.metadata.name === 'llmtor-redemption-0');
      assert.ok(pod0?.status.podIP, 'llmtor-redemption-0 has an address');
      // Two workers send to redemption-0 itself (so streams are in flight there when it goes), two
      // through the Service. A request that fails is retried unchanged (same body and token)
      // through the Service, as a client that saw an error would; what still fails is reported.
      const direct = await node!.exposeToHost(pod0.status.podIP, 8080);
      const directUrl = `http://127.0.0.1:${direct.port}`;
      type Attempt = { ok: true } | { ok: false; error: string; status?: number; code?: string };
      const silent: string[] = [];
      const attempt = async (url: string, token: Uint8Array, content: string): Promise<Attempt> => {
        try {
          const r = await client.redeem(url, token, undefined, { model: SLOW.model, content });
          if (r.ok) return { ok: true };
          // A failure the client can tell: an error status, or a stream cut before its [DONE].
          if (r.status === 200 && r.finished) silent.push(r.detail);
          return { ok: false, error: r.status === 200 ? 'stream cut' : `HTTP ${r.status} ${r.code ?? ''}`.trim(), status: r.status, code: r.code };
        } catch (e) {
          return { ok: false, error: (e as Error).message.replace(/:\d+/g, '') }; // a broken connection: the client knows
        }
      };
      const fates: Array<{ token: Uint8Array; fate: 'accepted' | 'retried-accepted' | 'reported'; first?: string; last?: string; retries: number }> = [];
      let next = 0;
      let onPod0 = 0;
      let deleted = false;
      let pod0Gone = false;
      const worker = async (toPod0: boolean) => {
        while (next < N) {
          const i = next++;
          const token = tokens[i]!;
          const content = `e2e pod loss ${i} ${Math.random()}`;
          const direct0 = toPod0 && !pod0Gone;
          if (direct0) onPod0++;
          const first = await attempt(direct0 ? directUrl : redemptionUrl, token, content);
          if (direct0) onPod0--;
          if (first.ok) {
            fates.push({ token, fate: 'accepted', retries: 0 });
            continue;
          }
          if (direct0 && deleted) pod0Gone = true;
          let last: Attempt = first;
          let retries = 0;
          // Retryable: the dead pod's claim until its lease ends (409 request_in_progress), 502/503,
          // a cut stream, a broken connection. Anything else is the final word, reported to the user.
          const deadline = Date.now() + (LEASE_SECONDS + 60) * 1000;
          const retryable = (x: Attempt) => !x.ok && (x.status === undefined || x.status === 502 || x.status === 503 || x.code === 'request_in_progress' || x.error === 'stream cut');
          while (retryable(last) && Date.now() < deadline) {
            if (retries > 0) await sleep(2_000);
            retries++;
            last = await attempt(redemptionUrl, token, content);
          }
          fates.push({ token, fate: last.ok ? 'retried-accepted' : 'reported', first: first.error, last: last.ok ? undefined : last.error, retries });
        }
      };
      const streaming = () => slow.requests - slow.streamsCompleted - slow.streamsAbortedByReader;
      const workers = [worker(true), worker(true), worker(false), worker(false)];
      await until('two requests in flight on redemption-0, streaming', async () => onPod0 >= 2 && streaming() >= 2, 60_000, 50);
      await sleep(1_500); // a quarter of the way into the answers
      const inFlight = { onPod0, streaming: streaming() };
      // A short grace period: the proxy drains on SIGTERM, and is killed before its 6 s streams end.
      await kubectl(['delete', 'pod', 'llmtor-redemption-0', '--grace-period=2', '--wait=false']);
      deleted = true;
      await Promise.all(workers);
      await direct.close();

      const count = (f: string) => fates.filter((x) => x.fate === f).length;
      const accepted = fates.filter((x) => x.fate !== 'reported');
      const errored = fates.filter((x) => x.first !== undefined);
      const reported = fates.filter((x) => x.fate === 'reported');
      console.log(`      in flight at deletion: ${inFlight.onPod0} on redemption-0, ${inFlight.streaming} streaming; ${N} tokens: ${count('accepted')} accepted, ${count('retried-accepted')} errored then accepted on retry, ${reported.length} reported`);
      console.log(`      first errors: ${JSON.stringify(tally(errored.map((x) => x.first!)))}; retries: ${JSON.stringify(tally(errored.map((x) => String(x.retries))))}; reported: ${JSON.stringify(tally(reported.map((x) => x.last!)))}; upstream: ${slow.streamsCompleted} streams completed, ${slow.streamsAbortedByReader} cut`);
      assert.deepEqual(silent, [], 'no answer that looks complete but is not');
      assert.equal(fates.length, N, 'every token accounted for');
      assert.ok(errored.length > 0, 'the deletion cut requests (else this stage tested nothing)');
      assert.ok(count('accepted') > 0, 'redemptions went on through the other replica');

      await until('both replicas Ready again', podsReady, 180_000, 2_000);
      // The spent set (the redemption Redis): every accepted token is there, done ('d').
      const states = await spentStates(fates.map((x) => x.token));
      const stateOf = (tok: Uint8Array) => states.get(spentHex(tok)) ?? 'absent';
      const notDone = accepted.filter((x) => stateOf(x.token) !== 'd').map((x) => `${x.fate}: ${stateOf(x.token)}`);
      assert.deepEqual(notDone, [], 'every accepted token is spent');
      console.log(`      spent set: ${accepted.length} accepted tokens done; reported tokens: ${JSON.stringify(tally(reported.map((x) => stateOf(x.token))))}`);
      // Presented again in a new request: refused, so no token buys two answers.
      for (const x of accepted) {
        const again = await client.redeem(redemptionUrl, x.token);
        assert.ok(!again.ok && again.status === 409 && again.code === 'token_spent', `a spent token was accepted again (${again.status} ${again.code})`);
      }
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
