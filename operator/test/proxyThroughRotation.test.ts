/**
 * End to end through a key rotation: real kube-apiserver, the operator (injected
 * clock), its Secrets mirrored into directories the way the kubelet updates a
 * Secret volume, the proxy in this process with both roles on a real
 * redis-server, and a client that blinds, issues (batch format) and redeems
 * (`POST /v1/chat/completions` against the local stand-in upstream) without pause
 * while the rotation is requested with kubectl and the clock moves past the
 * successor's not-before and past the old key's redemption window.
 */
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { createLogger, loadConfig, startProxy, type RunningProxy } from '@llmtor/proxy';
import { STAND_IN_TEXT } from '@llmtor/proxy/testing';
import { LOCAL_KEK_DATA_KEY, ROTATE_ANNOTATION, startOperator, type Clock, type RunningOperator } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';
import { mirrorSecret, writeAtomically, type SecretMirror } from './support/secretMirror.js';

const ISSUER = 'llmtor.local'; // the proxy's default issuerName: every token's challenge names it
const ADMIN_TOKEN = 'rotation-test-admin-token-0123456789abcdef';
const PEPPER = 'rotation-test-pepper-0123456789-abcdefghijklmnop';
const MODEL = 'llmtor-stand-in'; // default model, served by the in-process local stand-in upstream

/** Wall-clock time plus an offset the test moves: time flows, and jumps when told. Shared by operator, proxy and client (NTP-synchronised machines). */
class JumpClock implements Clock {
  private offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  set(t: number): void {
    this.offset = t - Date.now();
  }
}

const keyIdOf = (k: DirectoryKey) => toHex(tokenKeyId(fromBase64Url(k['token-key'])));
const short = (keyId: string | undefined) => keyId?.slice(0, 12) ?? '-';

/** A client of the proxy as the docs describe it: directory, account, blinded batch issuance, redemption with abuse tokens. */
class Client {
  private readonly clients = new Map<string, TokenClient>();
  accountKey = '';
  abuseHeader = '';
  constructor(
    readonly url: string,
    readonly clock: JumpClock,
  ) {}

  async directory(): Promise<DirectoryKey[]> {
    const res = await fetch(`${this.url}${ISSUER_DIRECTORY_PATH}`);
    assert.equal(res.status, 200, `directory: ${res.status}`);
    return parseIssuerDirectory(await res.text())['token-keys'];
  }

  /** The key of `purpose` that signs at the client's time (the newest one if windows overlap). */
  static issuing(keys: DirectoryKey[], purpose: KeyPurpose, now: number, epoch?: string): DirectoryKey | undefined {
    return keys
      .filter((k) => k.purpose === purpose && (k['not-before'] ?? 0) * 1000 <= now && now < (k['issuance-not-after'] ?? Infinity) * 1000 && (epoch === undefined || k.epoch === epoch))
      .sort((a, b) => (b['not-before'] ?? 0) - (a['not-before'] ?? 0))[0];
  }

  async json(method: string, path: string, body: unknown, authorization: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${this.url}${path}`, { method, headers: { authorization: `Bearer ${authorization}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  async createAccount(credits: number): Promise<void> {
    const created = await fetch(`${this.url}/v1/accounts`, { method: 'POST' });
    assert.equal(created.status, 201);
    this.accountKey = ((await created.json()) as { account_key: string }).account_key;
    const grant = await this.json('POST', '/v1/admin/grants', { account_key: this.accountKey, credits, reason: 'rotation test' }, ADMIN_TOKEN);
    assert.equal(grant.status, 201, JSON.stringify(grant.json));
  }

  async balance(): Promise<number> {
    const r = await this.json('GET', '/v1/account', undefined, this.accountKey);
    return r.json.balance as number;
  }

  /** Blinds n token requests for `key`, sends them as one generic batch, finalizes the answers. */
  async issue(key: DirectoryKey, n: number): Promise<{ status: number; tokens: Uint8Array[]; error?: string }> {
    const spki = key['token-key'];
    let client = this.clients.get(spki);
    if (!client) this.clients.set(spki, (client = await TokenClient.forKey(spki)));
    const blinded = await Promise.all(Array.from({ length: n }, () => client.createRequest(defaultChallenge(ISSUER))));
    const res = await fetch(`${this.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST, 'idempotency-key': `rot-${Date.now()}-${Math.random().toString(36).slice(2)}` },
      body: encodeBatchTokenRequest(blinded.map((b) => b.request)),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 200) return { status: res.status, tokens: [], error: Buffer.from(body).toString('utf8').slice(0, 300) };
    const answers = decodeBatchTokenResponse(body);
    const tokens: Uint8Array[] = [];
    for (let i = 0; i < answers.length; i++) if (answers[i]) tokens.push(await client.finalize(blinded[i]!.pending, answers[i]!));
    return { status: res.status, tokens, ...(tokens.length === n ? {} : { error: `${n - tokens.length} of ${n} batch entries absent` }) };
  }

  /** Permanent and this epoch's transient abuse token, one batch of 1 each (api.md "Token issuance"). */
  async fetchAbuseTokens(): Promise<void> {
    const keys = await this.directory();
    const now = this.clock.now();
    const permanent = Client.issuing(keys, 'permanent', now);
    const transient = Client.issuing(keys, 'transient', now, epochOf(new Date(now)));
    assert.ok(permanent && transient, 'the directory has a permanent and a transient key that sign now');
    const [p, t] = [await this.issue(permanent, 1), await this.issue(transient, 1)];
    assert.equal(p.tokens.length, 1, p.error);
    assert.equal(t.tokens.length, 1, t.error);
    this.abuseHeader = `permanent=${toBase64Url(p.tokens[0]!)}, transient=${toBase64Url(t.tokens[0]!)}`;
  }

  async redeem(token: Uint8Array, text: string): Promise<{ status: number; json: { error?: { code?: string; reason?: string }; choices?: { message?: { content?: string } }[] } }> {
    const res = await fetch(`${this.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: formatAuthorization([token]), 'llmtor-abuse': this.abuseHeader, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text }] }),
    });
    return { status: res.status, json: (await res.json()) as never };
  }
}

interface Outcome {
  phase: string;
  step: 'issue' | 'redeem';
  ok: boolean;
  status: number;
  keyId?: string;
  detail?: string;
}

/**
 * Issues one credit token and redeems it, again and again, until stopped. Clock
 * jumps are applied between two iterations (`between`): a jump in the middle of a
 * request would move time under a request already built for a key that the jump
 * retires — a client-side race, not a proxy failure. Everything else (operator
 * writes, Secret mirror swaps, proxy reloads) happens whenever it happens.
 */
class TrafficLoop {
  readonly outcomes: Outcome[] = [];
  phase = 'steady';
  private readonly queue: (() => void)[] = [];
  private stopped = false;
  private done: Promise<void> | undefined;
  constructor(private readonly client: Client) {}

  start(): void {
    this.done = (async () => {
      for (let i = 0; !this.stopped; i++) {
        while (this.queue.length) this.queue.shift()!();
        const phase = this.phase;
        try {
          const key = Client.issuing(await this.client.directory(), 'credit', this.client.clock.now());
          if (!key) {
            this.outcomes.push({ phase, step: 'issue', ok: false, status: 0, detail: 'no credit key signs now according to the directory' });
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const issued = await this.client.issue(key, 1);
          const token = issued.tokens[0];
          const keyId = token ? toHex(decodeToken(token).tokenKeyId) : undefined;
          this.outcomes.push({ phase, step: 'issue', ok: issued.status === 200 && token !== undefined && keyId === keyIdOf(key), status: issued.status, ...(keyId ? { keyId } : {}), ...(issued.error ? { detail: issued.error } : {}) });
          if (!token) continue;
          const r = await this.client.redeem(token, `request ${i} in phase ${phase}`);
          const ok = r.status === 200 && r.json.choices?.[0]?.message?.content === STAND_IN_TEXT;
          this.outcomes.push({ phase, step: 'redeem', ok, status: r.status, ...(keyId ? { keyId } : {}), ...(ok ? {} : { detail: JSON.stringify(r.json).slice(0, 300) }) });
        } catch (e) {
          this.outcomes.push({ phase, step: 'issue', ok: false, status: 0, detail: e instanceof Error ? e.message : String(e) });
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
  }

  /** Runs `fn` between two iterations (and resolves after it ran). */
  between(fn: () => void): Promise<void> {
    return new Promise((resolve) => this.queue.push(() => (fn(), resolve())));
  }

  /** Switches phase at an iteration boundary, optionally moving the clock there too. */
  enter(phase: string, fn: () => void = () => undefined): Promise<void> {
    return this.between(() => {
      fn();
      this.phase = phase;
    });
  }

  of(phase: string, step?: Outcome['step']): Outcome[] {
    return this.outcomes.filter((o) => o.phase === phase && (step === undefined || o.step === step));
  }

  /** Waits until `n` issue-and-redeem rounds completed in `phase`. */
  async rounds(phase: string, n: number): Promise<Outcome[]> {
    await waitFor(`${n} rounds in phase ${phase}`, async () => this.of(phase, 'redeem').length >= n || this.of(phase).some((o) => !o.ok), 60_000, 20);
    return this.of(phase);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe('kubelet-style Secret mirror (test support)', () => {
  it('switches versions through the ..data symlink, with one top-level symlink per key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llmtor-mirror-'));
    try {
      assert.equal(await writeAtomically(dir, { 'a.json': Buffer.from('A1'), 'b.json': Buffer.from('B1') }), true);
      const first = await readlink(join(dir, '..data'));
      assert.match(first, /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\./);
      assert.equal(await readlink(join(dir, 'a.json')), join('..data', 'a.json'));
      assert.equal(await writeAtomically(dir, { 'a.json': Buffer.from('A1'), 'b.json': Buffer.from('B1') }), false, 'same payload: nothing written');
      assert.equal(await writeAtomically(dir, { 'a.json': Buffer.from('A2'), 'c.json': Buffer.from('C1') }), true);
      const second = await readlink(join(dir, '..data'));
      assert.notEqual(second, first);
      assert.deepEqual((await readdir(dir)).sort(), [second, '..data', 'a.json', 'c.json'].sort(), 'old version and the removed key are gone');
      assert.ok((await lstat(join(dir, 'c.json'))).isSymbolicLink());
      assert.equal(await readFile(join(dir, 'a.json'), 'utf8'), 'A2');
      await writeFile(join(dir, 'unrelated'), 'x'); // a stray file is left alone, like on a node
      assert.equal(await writeAtomically(dir, { 'a.json': Buffer.from('A3') }), true);
      assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('..')).sort(), ['a.json', 'unrelated']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the proxy serves through a key rotation (operator, kube-apiserver, kubelet-style Secret volume, Redis)', function () {
  this.timeout(180_000);
  const NAME = 'main';
  const SECRET = `${NAME}-signing-keys`;
  const KEK_SECRET = `${NAME}-kek`;
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;
  let redis: RedisHandle | undefined;
  let op: RunningOperator | undefined;
  let keysMirror: SecretMirror | undefined;
  let kekMirror: SecretMirror | undefined;
  let proxy: RunningProxy | undefined;
  let loop: TrafficLoop | undefined;
  const dirs: string[] = [];
  const clock = new JumpClock();
  const operatorLog: string[] = [];
  const proxyLog: { level: number; msg: string; [k: string]: unknown }[] = [];
  const timings: Record<string, number> = {};

  before(async function () {
    this.timeout(600_000); // the first run may build kube-apiserver and etcd
    let t = Date.now();
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'rotation');
    redis = await startRedis();
    timings.clusterAndRedisMs = Date.now() - t;
    t = Date.now();
    op = await startOperator({
      kc: kubeConfig(env),
      namespace: ns,
      identity: 'op-rotation',
      clock,
      // Reconciles after a clock jump are asked for explicitly (enqueue) rather than waited for.
      resyncMs: 30_000,
      lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 },
      log: (level, msg) => {
        if (level !== 'info' && level !== 'debug') operatorLog.push(`${level}: ${msg}`);
      },
    });
    // Short windows so that the old key's redemption end is reachable: 6 h periods, published 1 h ahead,
    // tokens redeemable 30 min after the key stopped signing.
    await applyIssuer(env, ns, NAME, { credit: { rotationPeriod: '6h', issuanceWindow: '6h', redemptionGrace: '30m', publishAhead: '1h' } });
    await waitFor('issuer Ready', async () => (await cluster.issuer(ns, NAME)).status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'), 30_000);
    timings.operatorReadyMs = Date.now() - t;

    // The pod's volumes: the signing keys (LLMTOR_KEY_DIR) and the local key-encryption key (LLMTOR_KEK_FILE), as in helm/llmtor/templates/proxy.yaml.
    const keysDir = await mkdtemp(join(tmpdir(), 'llmtor-keys-vol-'));
    const kekDir = await mkdtemp(join(tmpdir(), 'llmtor-kek-vol-'));
    dirs.push(keysDir, kekDir);
    keysMirror = await mirrorSecret({ core: cluster.core, namespace: ns, name: SECRET, dir: keysDir, intervalMs: 200 });
    kekMirror = await mirrorSecret({ core: cluster.core, namespace: ns, name: KEK_SECRET, dir: kekDir, intervalMs: 1_000, items: { [LOCAL_KEK_DATA_KEY]: 'kek.pem' }, mode: 0o440 });

    t = Date.now();
    const config = loadConfig({
      env: {
        LLMTOR_ROLES: 'issuance,redemption',
        LLMTOR_HOST: '127.0.0.1',
        PORT: '0',
        LLMTOR_KEY_DIR: keysDir,
        LLMTOR_KEY_POLL_MS: '1000',
        LLMTOR_KEK_FILE: join(kekDir, 'kek.pem'),
        LLMTOR_KEK_NAME: KEK_SECRET,
        REDIS_URL: redis.url,
        LLMTOR_ACCOUNT_PEPPER: PEPPER,
        ADMIN_TOKEN,
        // The test account is funded by an admin grant: let that count for its abuse tokens.
        LLMTOR_GRANTS_COUNT_AS_PURCHASE: 'true',
        LLMTOR_SIGNER_THREADS: '1',
        LLMTOR_SHUTDOWN_GRACE_MS: '2000',
        LLMTOR_LOG_LEVEL: 'warn',
      },
    });
    const logger = createLogger({
      level: 'warn',
      destination: {
        write: (line: string) => {
          proxyLog.push(JSON.parse(line) as (typeof proxyLog)[number]);
        },
      },
    });
    proxy = await startProxy(config, { now: () => clock.now(), logger });
    await waitFor('proxy ready', async () => (await fetch(`${proxy!.url}/readyz`)).status === 200, 30_000);
    timings.proxyReadyMs = Date.now() - t;
  });

  after(async function () {
    this.timeout(60_000);
    await loop?.stop();
    await proxy?.stop(2_000);
    await keysMirror?.stop();
    await kekMirror?.stop();
    await op?.stop();
    await redis?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    const errors = proxyLog.filter((l) => l.level >= 40);
    console.log(`      timings (ms): ${JSON.stringify(timings)}`);
    if (errors.length) console.log(`      proxy warnings/errors (${errors.length}):\n${errors.map((l) => `        ${JSON.stringify(l).slice(0, 300)}`).join('\n')}`);
    if (operatorLog.length) console.log(`      operator warnings/errors (${operatorLog.length}):\n${operatorLog.map((l) => `        ${l.slice(0, 300)}`).join('\n')}`);
  });

  it('no request fails through the rotation; new tokens come from the new key; old tokens redeem during their grace, then get 401 unknown_key_id', async () => {
    const started = Date.now();
    const client = new Client(proxy!.url, clock);
    await client.createAccount(200);
    await client.fetchAbuseTokens();
    const reconcileNow = () => op!.controller()?.enqueue(`${ns}/${NAME}`, 0);
    const credit = async () => (await client.directory()).filter((k) => k.purpose === 'credit');
    const signing = async () => Client.issuing(await client.directory(), 'credit', clock.now())!;
    const keyFile = async (keyId: string) => (await cluster.keyFiles(ns, SECRET)).get(keyId);

    const k1 = keyIdOf(await signing());
    const k1File = (await keyFile(k1))!;
    // Tokens of the first key, kept for later (a client's wallet).
    const wallet = await client.issue(await signing(), 3);
    assert.equal(wallet.tokens.length, 3, wallet.error);
    assert.ok(wallet.tokens.every((t) => toHex(decodeToken(t).tokenKeyId) === k1));

    loop = new TrafficLoop(client);
    loop.start();
    const steady = await loop.rounds('steady', 3);
    assert.ok(steady.every((o) => o.ok && o.keyId === k1), JSON.stringify(steady));

    // --- 1. kubectl requests the rotation: the successor is published (not-before = now + publishAhead), the old key keeps signing until then.
    await loop.enter('published');
    let t = Date.now();
    const writesBefore = keysMirror!.writes;
    const r = await env.kubectl(['annotate', 'tokenissuer', NAME, '-n', ns, `${ROTATE_ANNOTATION}=now`, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    const k2Key = await waitFor('the proxy lists the successor', async () => (await credit()).find((k) => keyIdOf(k) !== k1), 30_000, 50);
    timings.annotateToProxyDirectoryMs = Date.now() - t;
    const k2 = keyIdOf(k2Key);
    const k2File = (await keyFile(k2))!;
    assert.ok(keysMirror!.writes > writesBefore, 'the new key reached the proxy through a ..data swap');
    assert.equal(Date.parse(k2File.notBefore) - clock.now() > 55 * 60_000, true, 'the successor signs only after publishAhead');
    const k1Retired = (await keyFile(k1))!;
    assert.equal(k1Retired.issuanceEnd, k2File.notBefore, 'the old key signs until the successor takes over');
    assert.equal(k1Retired.redemptionEnd, k1File.redemptionEnd, 'its redemption window is untouched');
    const published = await loop.rounds('published', 6);
    assert.ok(published.every((o) => o.ok), JSON.stringify(published.filter((o) => !o.ok)));
    assert.ok(published.every((o) => o.keyId === k1), 'until the successor takes over, tokens come from the old key');

    // --- 2. The clock passes the successor's not-before: it takes over, the old key only redeems.
    await loop.enter('taken-over', () => clock.set(Date.parse(k2File.notBefore) + 1_000));
    reconcileNow();
    const takenOver = await loop.rounds('taken-over', 3);
    assert.ok(takenOver.every((o) => o.ok && o.keyId === k2), JSON.stringify(takenOver));
    const early = await client.redeem(wallet.tokens[0]!, 'old token in its grace');
    assert.equal(early.status, 200, `a token of the old key redeems after the rotation: ${JSON.stringify(early.json)}`);
    const st = await waitFor('status shows the new key', async () => {
      const s = (await cluster.issuer(ns, NAME)).status;
      return s?.currentCreditKey === short(k2) ? s : undefined;
    });
    assert.equal(st.keys!.find((k) => k.keyId === k1)!.state, 'RedeemOnly');

    // --- 3. Just before the old key's redemption end (the operator meanwhile publishes the next scheduled key).
    await loop.enter('grace-end', () => clock.set(Date.parse(k1File.redemptionEnd) - 60_000));
    reconcileNow();
    const k3Key = await waitFor('the proxy lists the next scheduled key', async () => (await credit()).find((k) => ![k1, k2].includes(keyIdOf(k))), 30_000, 50);
    assert.ok((k3Key['not-before'] ?? 0) * 1000 > clock.now(), 'published ahead, not signing yet');
    const graceEnd = await loop.rounds('grace-end', 3);
    assert.ok(graceEnd.every((o) => o.ok && o.keyId === k2), JSON.stringify(graceEnd));
    const late = await client.redeem(wallet.tokens[1]!, 'old token at the end of its grace');
    assert.equal(late.status, 200, `still redeemable a minute before its redemption end: ${JSON.stringify(late.json)}`);

    // --- 4. Past the old key's redemption end. The volume is held at its current version first (a kubelet
    //        that has not synced yet): the proxy rejects the token by the key's window, not because the file went.
    await keysMirror!.pause();
    await loop.enter('expired', () => clock.set(Date.parse(k1File.redemptionEnd) + 1_000));
    assert.ok(proxy!.keys.keyring().get(k1), 'the old key file is still in the key directory');
    const rejected = await client.redeem(wallet.tokens[2]!, 'old token past its redemption end');
    assert.equal(rejected.status, 401, JSON.stringify(rejected.json));
    assert.equal(rejected.json.error?.code, 'invalid_token');
    assert.equal(rejected.json.error?.reason, 'unknown_key_id');
    assert.ok(!(await credit()).some((k) => keyIdOf(k) === k1), 'the directory no longer lists it');
    // The operator removes the key file; the volume catches up; the proxy drops the key.
    reconcileNow();
    await waitFor('the operator removes the old key', async () => !(await cluster.keyFiles(ns, SECRET)).has(k1), 30_000, 50);
    t = Date.now();
    keysMirror!.resume();
    await waitFor('the proxy drops the old key', async () => proxy!.keys.keyring().get(k1) === undefined, 30_000, 50);
    timings.removalToProxyMs = Date.now() - t;
    assert.ok(!(await readdir(keysMirror!.dir)).includes(`${k1}.json`), 'its file is gone from the volume');
    const again = await client.redeem(wallet.tokens[2]!, 'old token after its key was removed');
    assert.equal(again.status, 401);
    assert.equal(again.json.error?.reason, 'unknown_key_id');
    const expired = await loop.rounds('expired', 3);
    assert.ok(expired.every((o) => o.ok && o.keyId === k2), JSON.stringify(expired));

    await loop.stop();
    const all = loop.outcomes;
    const failed = all.filter((o) => !o.ok);
    assert.deepEqual(failed, [], 'no request failed while the proxy went through the rotation');
    const issuedCredit = all.filter((o) => o.step === 'issue').length + wallet.tokens.length;
    assert.equal(await client.balance(), 200 - issuedCredit, 'every credit token was debited exactly once');
    const byPhase = ['steady', 'published', 'taken-over', 'grace-end', 'expired'].map((p) => `${p} ${loop!.of(p, 'issue').length}/${loop!.of(p, 'redeem').length} (${[...new Set(loop!.of(p).map((o) => short(o.keyId)))].join(',')})`);
    timings.scenarioMs = Date.now() - started;
    console.log(`      issue/redeem per phase: ${byPhase.join('; ')}; ${keysMirror!.writes} volume updates; old key ${short(k1)} -> new key ${short(k2)}`);
  });
});
