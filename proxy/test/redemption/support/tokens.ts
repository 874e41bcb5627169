/**
 * A test "mint": real signing keys for the three purposes and real type-0x0002
 * tokens made the way a client makes them (TokenClient blinds and finalizes,
 * BlindSigner signs natively).
 */
import { constants, randomBytes, sign, type KeyObject } from 'node:crypto';
import {
  challengeDigest,
  defaultChallenge,
  encodeToken,
  encodeTokenInput,
  formatAuthorization,
  fromHex,
  keyEntry,
  keyMetadata,
  Keyring,
  PSS_SALT_LENGTH,
  TOKEN_TYPE_BLIND_RSA,
  toBase64Url,
  type KeyMetadata,
  type KeyPurpose,
} from '@llmtor/protocol';
import { BlindSigner, generateSigningKey } from '@llmtor/protocol/server';
import { TokenClient } from '@llmtor/protocol/client';

export const ISSUER = 'llmtor-test-issuer';
const DAY = 86_400_000;

export interface MintKey {
  purpose: KeyPurpose;
  privateKey: KeyObject;
  meta: KeyMetadata;
  signer: BlindSigner;
  client: TokenClient;
}

export interface Windows {
  notBefore: number;
  issuanceEnd: number;
  redemptionEnd: number;
}

export class Mint {
  readonly keys = new Map<string, MintKey>();
  private constructor(readonly issuer: string) {}

  /** Keys for credit, permanent and transient tokens, valid around `now`. */
  static async create(opts: { issuer?: string; now?: number; windows?: Partial<Record<KeyPurpose, Windows>> } = {}): Promise<Mint> {
    const m = new Mint(opts.issuer ?? ISSUER);
    const now = opts.now ?? Date.now();
    const def: Windows = { notBefore: now - DAY, issuanceEnd: now + 30 * DAY, redemptionEnd: now + 60 * DAY };
    await Promise.all(
      (['credit', 'permanent', 'transient'] as const).map(async (purpose) => {
        await m.addKey(purpose, purpose, opts.windows?.[purpose] ?? def);
      }),
    );
    return m;
  }

  async addKey(name: string, purpose: KeyPurpose, w: Windows): Promise<MintKey> {
    const privateKey = await generateSigningKey();
    const meta = keyMetadata(privateKey, {
      purpose,
      ...(purpose === 'transient' ? { epoch: '2026-11' } : {}),
      notBefore: new Date(w.notBefore).toISOString(),
      issuanceEnd: new Date(w.issuanceEnd).toISOString(),
      redemptionEnd: new Date(w.redemptionEnd).toISOString(),
    });
    const k: MintKey = { purpose, privateKey, meta, signer: new BlindSigner(privateKey), client: await TokenClient.forKey(meta.publicKey) };
    this.keys.set(name, k);
    return k;
  }

  keyring(): Keyring {
    return new Keyring([...this.keys.values()].map((k) => keyEntry(k.meta)));
  }

  metadata(): KeyMetadata[] {
    return [...this.keys.values()].map((k) => k.meta);
  }

  /** n real tokens from the named key (default: the key named like the purpose). */
  async tokens(name: string, n: number, issuer = this.issuer): Promise<Uint8Array[]> {
    const k = this.keys.get(name);
    if (!k) throw new Error(`no key ${name}`);
    const digest = challengeDigest(defaultChallenge(issuer));
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const { request, pending } = await k.client.createRequest(digest);
      out.push(await k.client.finalize(pending, { blindSig: k.signer.sign(request.blindedMsg) }));
    }
    return out;
  }

  /**
   * Many tokens fast (load tests need 1 000+; the client-side blinding in
   * blindrsa-ts costs ~50 ms each). A blind signature on an unblinded message is
   * an ordinary RSASSA-PSS (SHA-384, salt 48) signature of the token input, so
   * the tokens are the same bytes a blind issuance produces, signed natively.
   */
  bulkTokens(name: string, n: number, issuer = this.issuer): Uint8Array[] {
    const k = this.keys.get(name);
    if (!k) throw new Error(`no key ${name}`);
    const digest = challengeDigest(defaultChallenge(issuer));
    const keyId = fromHex(k.meta.keyId);
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const t = { tokenType: TOKEN_TYPE_BLIND_RSA, nonce: new Uint8Array(randomBytes(32)), challengeDigest: digest, tokenKeyId: keyId };
      const authenticator = sign('sha384', encodeTokenInput(t), { key: k.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH });
      out.push(encodeToken({ ...t, authenticator: new Uint8Array(authenticator) }));
    }
    return out;
  }

  /** `LLMTor-Abuse` header value for a fresh pseudonym. */
  async abuseHeader(): Promise<string> {
    const [p] = await this.tokens('permanent', 1);
    const [t] = await this.tokens('transient', 1);
    return `permanent=${toBase64Url(p!)}, transient=${toBase64Url(t!)}`;
  }
}

export function authorization(tokens: readonly Uint8Array[]): string {
  return formatAuthorization(tokens);
}
