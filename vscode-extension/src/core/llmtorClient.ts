/**
 * The extension's client, without any UI: account, wallet upkeep (prefetch, abuse tokens,
 * epoch renewal), and chat over Tor. The VS Code layer drives it; the integration test
 * drives it directly against a real proxy through a real Tor network.
 *
 * Channels:
 *   issuance  (account key)  → IssuanceApi over the issuance transport (clearnet or Tor)
 *   anonymous (tokens)       → RedemptionApi over Tor only, a fresh circuit per request
 */
import { challengeDeviation, challengeDigest, fromBase64Url, parseIssuerDirectory, parseWwwAuthenticate, pinnedChallenge, type IssuerDirectory } from '@llmtor/protocol';
import { ServerError, tokenFate } from './apiErrors.js';
import { permanentAction, pickIssuingKey, transientAction, type AbuseTokenAction } from './epoch.js';
import { checkKeyConsistency, KeyConsistencyError, pinDirectory, type PinDoc } from './keyConsistency.js';
import { IssuanceApi, normalizeAccountKey, type AccountInfo, type CreditPack } from './issuanceApi.js';
import { PinStore } from './pinStore.js';
import { creditsFor, RedemptionApi, type ChatMessage, type ChatResult, type ModelInfo } from './redemptionApi.js';
import { TokenMinter, type IssueResult } from './tokenMinter.js';
import type { TorTransport, Transport } from './transport.js';
import { NoReadyTokensError, type CreditToken, type SecretStore, type Wallet } from './wallet.js';

/**
 * The server offered (or the client was about to use) a TokenChallenge other than the one
 * the client derives itself. Tokens for it could carry a per-user tag: nothing is made or
 * spent for it.
 */
export class ChallengeRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChallengeRefusedError';
  }
}

export const ACCOUNT_SECRET_KEY = 'llmtor.accountKey';

export interface LlmTorClientOptions {
  /** Base URL of the issuance side (accounts, purchases, issuance). */
  issuerUrl: string;
  /** Base URL of the anonymous side (an .onion address, or https through an exit). */
  redemptionUrl: string;
  /** Transport for issuance calls: clearnet, or Tor (never the circuit of a redemption). */
  issuance: Transport;
  /** Transport for everything anonymous. */
  tor: TorTransport;
  wallet: Wallet;
  secrets: SecretStore;
  /**
   * Issuer name of the TokenChallenge. Empty → the "issuer-name" of the directory fetched
   * anonymously over Tor from the redemption URL, pinned on first sight. Never from a 401.
   */
  issuerName?: string;
  /** Credit tokens per issuance (a fixed batch; refillPlan.ts). */
  batchSize: number;
  /** Where the pins are kept (default: beside the wallet, in `secrets`). */
  pins?: PinStore;
  /** A second vantage point: a mirror of the directory (fetched over its own Tor circuit) that must agree. */
  directoryMirrorUrl?: string;
  now?: () => number;
  /** Retries of a chat request after a retryable failure (same tokens, same bytes, new circuit). */
  chatRetries?: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface SendOptions {
  onDelta?: (text: string) => void;
  /** A retryable failure arrived (the UI says so at once instead of after every retry). */
  onRetry?: (e: unknown, attempt: number, of: number) => void;
  signal?: AbortSignal;
  temperature?: number;
  maxTokens?: number;
}

export interface SendResult extends ChatResult {
  credits: number;
}


export class LlmTorClient {
  readonly issuance: IssuanceApi;
  readonly redemption: RedemptionApi;
  readonly minter: TokenMinter;
  readonly wallet: Wallet;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  readonly pins: PinStore;
  private modelCache: { at: number; models: ModelInfo[] } | undefined;
  private refilling: Promise<IssueResult> | undefined;

  constructor(private readonly opts: LlmTorClientOptions) {
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.issuance = new IssuanceApi(opts.issuerUrl, opts.issuance);
    this.redemption = new RedemptionApi(opts.redemptionUrl, opts.tor);
    this.wallet = opts.wallet;
    this.pins = opts.pins ?? new PinStore(opts.secrets);
    this.minter = new TokenMinter({
      issuance: this.issuance,
      wallet: opts.wallet,
      accountKey: () => this.requireAccountKey(),
      challengeDigest: () => this.challengeDigest(),
      pins: () => this.pins.get(),
      now: this.now,
    });
  }

  get batchSize(): number {
    return this.opts.batchSize;
  }

  // ---- account -------------------------------------------------------------------------

  async accountKey(): Promise<string | undefined> {
    return (await this.opts.secrets.get(ACCOUNT_SECRET_KEY)) ?? undefined;
  }

  private async requireAccountKey(): Promise<string> {
    const k = await this.accountKey();
    if (!k) throw new Error('no account: create one or sign in with your account key');
    return k;
  }

  /** Creates an account and stores its key; returns the key (shown to the user once). */
  async createAccount(): Promise<string> {
    const key = await this.issuance.createAccount();
    await this.opts.secrets.store(ACCOUNT_SECRET_KEY, key);
    return key;
  }

  /** Checks the key with the server, then stores it. */
  async signIn(text: string): Promise<AccountInfo> {
    const key = normalizeAccountKey(text);
    if (!key) throw new Error('an account key is a long number (digits, spaces allowed)');
    const info = await this.issuance.account(key);
    await this.opts.secrets.store(ACCOUNT_SECRET_KEY, key);
    return info;
  }

  /** Forgets the account key and every token (they belong to the account). */
  async signOut(): Promise<void> {
    await this.opts.secrets.delete(ACCOUNT_SECRET_KEY);
    await this.wallet.clear();
  }

  async account(): Promise<AccountInfo> {
    return this.issuance.account(await this.requireAccountKey());
  }

  packs(): Promise<CreditPack[]> {
    return this.issuance.packs();
  }

  async purchase(pack: string, idempotencyKey: string): Promise<string> {
    return (await this.issuance.purchase(await this.requireAccountKey(), pack, idempotencyKey)).checkoutUrl;
  }

  // ---- models and challenge -------------------------------------------------------------

  async models(force = false): Promise<ModelInfo[]> {
    if (!force && this.modelCache && this.now() - this.modelCache.at < 5 * 60_000) return this.modelCache.models;
    const models = await this.redemption.models();
    this.modelCache = { at: this.now(), models };
    return models;
  }

  /** The issuer name the challenge is derived from: configured, else pinned from the anonymous directory. */
  async issuerName(): Promise<string> {
    if (this.opts.issuerName) return this.opts.issuerName;
    const pinned = (await this.pins.get()).issuerName;
    if (pinned) return pinned;
    throw new ChallengeRefusedError('No issuer name yet: it comes from the issuer directory fetched over Tor (not published by this server?). Set "llmtor.issuerName" to the name your server documents.');
  }

  /** SHA-256 of the client's own TokenChallenge (token type 0x0002, issuer name, no context, no origin). */
  async challengeDigest(): Promise<Uint8Array> {
    return challengeDigest(pinnedChallenge(await this.issuerName()));
  }

  /**
   * Fetches the issuer directory anonymously (a fresh Tor circuit, at a time the refill
   * schedule picks at random) and pins it; tokens are later issued under its current keys
   * only. Throws KeyConsistencyError (nothing pinned) on any alarm.
   */
  async refreshDirectory(): Promise<IssuerDirectory> {
    const dir = parseIssuerDirectory(await this.redemption.directory());
    const mirror = this.opts.directoryMirrorUrl ? parseIssuerDirectory(await new RedemptionApi(this.opts.directoryMirrorUrl, this.opts.tor).directory()) : undefined;
    const current = await this.pins.get();
    let pins: PinDoc;
    try {
      pins = pinDirectory(current, dir, this.now(), { ...(this.opts.issuerName ? { configuredIssuerName: this.opts.issuerName } : {}), ...(mirror ? { mirror } : {}) });
    } catch (e) {
      if (e instanceof KeyConsistencyError) await this.pins.set({ ...current, alarm: { message: e.message, at: this.now() } });
      throw e;
    }
    await this.pins.set(pins);
    return dir;
  }

  /** Forgets every pin and alarm (the user's explicit decision to trust the server's keys again). */
  async resetPins(): Promise<void> {
    await this.pins.clear();
  }

  async pinned(): Promise<PinDoc> {
    return this.pins.get();
  }

  // ---- wallet upkeep --------------------------------------------------------------------

  /** What to do about each abuse token now (from the pinned directory). */
  async abuseActions(): Promise<{ permanent: AbuseTokenAction; transient: AbuseTokenAction }> {
    const held = await this.wallet.abuseTokens();
    const now = this.now();
    const dir = (await this.pins.get()).directory?.doc;
    return { permanent: permanentAction(held.permanent, now), transient: transientAction(held.transient, now, dir ? pickIssuingKey(dir, 'transient', now) !== undefined : false) };
  }

  /** Gets the named abuse tokens (at a scheduled refill, or on the user's explicit request). */
  async issueAbuse(which: readonly ('permanent' | 'transient')[]): Promise<void> {
    for (const p of which) await this.minter.issue(p, 1);
  }

  /** Makes sure both abuse tokens are held and current. */
  async ensureAbuseTokens(): Promise<{ permanent: AbuseTokenAction; transient: AbuseTokenAction }> {
    const a = await this.abuseActions();
    await this.issueAbuse([...(a.permanent !== 'keep' ? ['permanent' as const] : []), ...(a.transient !== 'keep' ? ['transient' as const] : [])]);
    return a;
  }

  /**
   * Gets one fixed batch of credit tokens (bounded by the balance), plus missing abuse tokens
   * when the account has credit. Needs a pinned directory (refreshDirectory, at another
   * time). Called by the refill schedule, or by the user's explicit "Get tokens now".
   * Concurrent calls share one run.
   */
  refill(opts: { batch?: number; abuse?: boolean; balance?: number } = {}): Promise<IssueResult> {
    if (this.refilling) return this.refilling;
    const run = (async () => {
      const total: IssueResult = { issued: 0, refused: 0 };
      const resumed = await this.minter.resumePending();
      total.issued += resumed.issued;
      await this.wallet.dropExpired();
      const balance = opts.balance ?? (await this.account()).balance;
      const { total: have } = await this.wallet.counts();
      // Abuse tokens only for an account with credit to spend (a pseudonym must cost something).
      if (opts.abuse !== false && (balance > 0 || have > 0)) await this.ensureAbuseTokens();
      const n = Math.min(opts.batch ?? this.opts.batchSize, balance);
      if (n <= 0) return total;
      const r = await this.minter.issue('credit', n);
      total.issued += r.issued;
      total.refused += r.refused;
      return total;
    })();
    this.refilling = run;
    void run.finally(() => {
      if (this.refilling === run) this.refilling = undefined;
    }).catch(() => undefined);
    return run;
  }

  /**
   * Revokes the current transient abuse token over Tor. No new one is requested now: the
   * refill schedule gets it at a later random wake, at least RefillPolicy.revokeGapMs later
   * and on another circuit, so the issuance side cannot tie the revoked token to the account
   * by timing (docs/privacy.md).
   */
  async revokeTransient(): Promise<void> {
    const held = (await this.wallet.abuseTokens()).transient;
    if (!held) return;
    await this.redemption.revokeTransient(fromBase64Url(held.token, 'transient'));
    await this.wallet.revokedTransient(this.now());
  }

  // ---- chat -----------------------------------------------------------------------------

  /** The exact request bytes and their price. */
  async prepare(model: string, messages: ChatMessage[], opts: Pick<SendOptions, 'temperature' | 'maxTokens'> = {}): Promise<{ body: string; credits: number; model: ModelInfo }> {
    const info = (await this.models()).find((m) => m.id === model) ?? (await this.models(true)).find((m) => m.id === model);
    if (!info) throw new Error(`model ${model} is not offered by the server`);
    const req: Record<string, unknown> = { model, messages: messages.map((m) => ({ role: m.role, content: m.content })), stream: true };
    if (opts.temperature !== undefined) req['temperature'] = opts.temperature;
    if (opts.maxTokens !== undefined) req['max_tokens'] = opts.maxTokens;
    const body = JSON.stringify(req);
    return { body, credits: creditsFor(info, Buffer.byteLength(body, 'utf8')), model: info };
  }

  /**
   * Sends a chat over Tor, paying with wallet tokens. Throws NoReadyTokensError (nothing
   * taken) when the wallet cannot pay yet; the UI offers to wait.
   */
  async send(model: string, messages: ChatMessage[], opts: SendOptions = {}): Promise<SendResult> {
    const { body, credits } = await this.prepare(model, messages, opts);
    const abuse = await this.abuseCredentials();
    const tokens = await this.wallet.take(credits);
    const raw = tokens.map((t) => fromBase64Url(t.token, 'token'));
    let attempt = 0;
    let produced = false;
    const onDelta = (d: string) => {
      produced = true;
      opts.onDelta?.(d);
    };
    for (;;) {
      try {
        const r = await this.redemption.chat(body, raw, abuse, { onDelta, ...(opts.signal ? { signal: opts.signal } : {}) });
        return { ...r, credits };
      } catch (e) {
        await this.refuseForeignChallenge(e, tokens);
        const outcome = tokenFate(e, produced);
        if (outcome === 'retry' && attempt < (this.opts.chatRetries ?? 2) && !opts.signal?.aborted) {
          attempt++;
          opts.onRetry?.(e, attempt, this.opts.chatRetries ?? 2);
          await this.sleep(retryDelay(e, attempt));
          continue;
        }
        if (outcome === 'unspent' || outcome === 'retry') await this.wallet.putBack(tokens);
        throw e;
      }
    }
  }

  /**
   * A 401 may carry a WWW-Authenticate challenge. The client never learns a challenge from
   * it: if it differs from the pinned one (another name, a redemption context, origin info)
   * the tokens go back and the user is told; otherwise the 401 is an ordinary error.
   */
  private async refuseForeignChallenge(e: unknown, tokens: CreditToken[]): Promise<void> {
    if (!(e instanceof ServerError) || e.status !== 401) return;
    const www = e.headers['www-authenticate'];
    if (typeof www !== 'string' || !/PrivateToken/i.test(www)) return;
    let offered: Uint8Array;
    try {
      offered = parseWwwAuthenticate(www).challenge;
    } catch {
      return;
    }
    const why = challengeDeviation(offered, await this.issuerName());
    if (why === undefined) return;
    await this.wallet.putBack(tokens);
    throw new ChallengeRefusedError(`Refused the server's token challenge: ${why}. This client makes tokens only for its own challenge (issuer ${JSON.stringify(await this.issuerName())}, no context, no origin); a challenge chosen per request could tie your chats to your account. Nothing was sent for it.`);
  }

  private async abuseCredentials(): Promise<{ permanent: Uint8Array; transient: Uint8Array } | undefined> {
    const held = await this.wallet.abuseTokens();
    if (!held.permanent || !held.transient) return undefined;
    return { permanent: fromBase64Url(held.permanent.token, 'permanent'), transient: fromBase64Url(held.transient.token, 'transient') };
  }

  /** Checks the keys of the abuse tokens held against the pinned directory (fetched over Tor). */
  async verifyWalletKeys(): Promise<void> {
    const dir = (await this.pins.get()).directory?.doc;
    if (!dir) throw new KeyConsistencyError('No issuer directory has been fetched over Tor yet.');
    const held = await this.wallet.abuseTokens();
    for (const t of [held.permanent, held.transient]) if (t) checkKeyConsistency({ tokenKey: t.tokenKey, purpose: t.purpose, ...(t.epoch ? { epoch: t.epoch } : {}) }, dir);
  }
}

function retryDelay(e: unknown, attempt: number): number {
  const ra = e instanceof ServerError ? e.headers['retry-after'] : undefined;
  if (typeof ra === 'string' && /^\d+$/.test(ra)) return Math.min(10_000, Number(ra) * 1000);
  return 500 * attempt;
}

export { NoReadyTokensError, type CreditToken };
