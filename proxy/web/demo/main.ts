/**
 * The /demo page: the client side of LLM-Tor, in this browser tab, against the
 * server that served it. Each step shows what the issuer saw and what the
 * redeemer saw; the bytes are the real ones, named as in the RFCs.
 */
import {
  decodeBatchTokenResponse,
  encodeBatchTokenRequest,
  encodeToken,
  encodeTokenInput,
  encodeTokenRequest,
  MEDIA_TYPE_BATCH_REQUEST,
  TOKEN_TYPE_BLIND_RSA,
  type TokenRequest,
} from '@llmtor/protocol/wire';
import { blind, concat, explainPair, finalize, fromBase64Url, importTokenKey, randomBytes, sha256, toBase64Url, toBytes, toHex, type Blinded, type RsaPublicKey } from './blindRsa.js';
import { h, nothing, refLink, rows, short, struct, time, type Ref } from './view.js';

type Purpose = 'credit' | 'permanent' | 'transient';
interface DirKey {
  'token-type': number;
  'token-key': string;
  'not-before'?: number;
  purpose?: Purpose;
  epoch?: string;
}
interface TokenKey {
  purpose: Purpose;
  epoch?: string;
  spki: Uint8Array;
  keyId: Uint8Array;
  key: RsaPublicKey;
}
interface Issued {
  purpose: Purpose;
  label: string;
  input: Uint8Array;
  blinded: Blinded;
  request: TokenRequest;
  blindSig?: Uint8Array;
  token?: Uint8Array;
}

const config = JSON.parse(document.getElementById('app')!.dataset.config ?? '{}') as { issuerRequestPath: string; demoCredits: number };
const BATCH = 4;
const LETTERS = ['A', 'B', 'C', 'D', 'E', 'F'];
const PROMPT = 'Explain in one paragraph why blind signatures make this request unlinkable.';

const REF = {
  challenge: { label: 'RFC 9577 §2.1', href: 'https://www.rfc-editor.org/rfc/rfc9577.html#section-2.1' },
  token: { label: 'RFC 9577 §2.2', href: 'https://www.rfc-editor.org/rfc/rfc9577.html#section-2.2' },
  request: { label: 'RFC 9578 §6.1', href: 'https://www.rfc-editor.org/rfc/rfc9578.html#section-6.1' },
  response: { label: 'RFC 9578 §6.2', href: 'https://www.rfc-editor.org/rfc/rfc9578.html#section-6.2' },
  blindRsa: { label: 'RFC 9474 §4', href: 'https://www.rfc-editor.org/rfc/rfc9474.html#section-4' },
  batch: { label: 'batched tokens draft §6', href: 'https://datatracker.ietf.org/doc/html/draft-ietf-privacypass-batched-tokens#section-6' },
  directory: { label: 'RFC 9578 §4', href: 'https://www.rfc-editor.org/rfc/rfc9578.html#section-4' },
  docsChallenge: { label: 'docs: Challenge', href: '/demo/docs/protocol#challenge' },
  docsKeys: { label: 'docs: Issuer directory', href: '/demo/docs/protocol#issuer-directory' },
  docsBatch: { label: 'docs: Batched issuance', href: '/demo/docs/protocol#batched-issuance' },
  docsClient: { label: 'docs: Client', href: '/demo/docs/protocol#client-nativetokenclient' },
  docsAuth: { label: 'docs: Authorization', href: '/demo/docs/protocol#authorization' },
  docsUnlink: { label: 'docs: Unlinkability of tokens', href: '/demo/docs/privacy#unlinkability-of-tokens-credit-tokens' },
  docsAbuse: { label: 'docs: Abuse tokens', href: '/demo/docs/privacy#abuse-tokens-a-pseudonym-on-purpose' },
  docsRedemption: { label: 'docs: What the redemption side keeps', href: '/demo/docs/privacy#what-the-redemption-side-keeps' },
} satisfies Record<string, Ref>;

// What this tab knows. The account key and r never leave it except as the requests show.
const st: {
  issuerName?: string;
  keys: Partial<Record<Purpose, TokenKey>>;
  accountKey?: string;
  digest?: Uint8Array;
  issued: Issued[];
  abuse: Partial<Record<'permanent' | 'transient', Issued>>;
  records: { at: Date; blindedMsg: Uint8Array; blindSig: Uint8Array }[];
  order: number[];
  answer?: string;
  redeem?: { headers: Record<string, string>; body: string; tokens: Issued[] };
} = { keys: {}, issued: [], abuse: {}, records: [], order: [] };

// ---------------------------------------------------------------- page frame

interface Step {
  id: string;
  title: string;
  lede: string;
  run(out: StepOut): Promise<void>;
}
interface StepOut {
  issuer: HTMLElement;
  redeemer: HTMLElement;
  detail: HTMLElement;
}

const app = document.getElementById('app')!;
const status = h('p', { id: 'status', role: 'status' }, 'Ready. Nothing has been sent yet.');
const nextBtn = h('button', { id: 'next', class: 'primary' }, 'Run step 1');
const allBtn = h('button', { id: 'run-all' }, 'Run the whole walk');
let cursor = 0;
let busy = false;

async function post(path: string, init: RequestInit): Promise<Response> {
  return fetch(path, { ...init, method: 'POST', credentials: 'omit', cache: 'no-store' });
}
async function expectOk(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

function sectionFor(step: Step, i: number): HTMLElement {
  return h(
    'section',
    { class: 'step', id: step.id, 'data-state': 'pending' },
    h('h2', {}, h('span', { class: 'num' }, String(i + 1)), step.title),
    h('p', { class: 'lede' }, step.lede),
    h(
      'div',
      { class: 'panels' },
      h('div', { class: 'panel issuer' }, h('h3', {}, 'What the issuer saw'), h('p', { class: 'who' }, 'issuance side: knows the account'), h('div', { class: 'pbody' }, nothing('—'))),
      h('div', { class: 'panel redeemer' }, h('h3', {}, 'What the redeemer saw'), h('p', { class: 'who' }, 'anonymous side: sees tokens and prompts'), h('div', { class: 'pbody' }, nothing('—'))),
    ),
    h('div', { class: 'detail' }),
  );
}

async function runStep(i: number): Promise<void> {
  const step = STEPS[i]!;
  const sec = document.getElementById(step.id)!;
  const [issuer, redeemer] = Array.from(sec.querySelectorAll<HTMLElement>('.pbody'));
  const detail = sec.querySelector<HTMLElement>('.detail')!;
  issuer!.replaceChildren();
  redeemer!.replaceChildren();
  detail.replaceChildren();
  sec.dataset.state = 'running';
  status.textContent = `Step ${i + 1}: ${step.title}…`;
  try {
    await step.run({ issuer: issuer!, redeemer: redeemer!, detail });
    sec.dataset.state = 'done';
  } catch (e) {
    sec.dataset.state = 'error';
    detail.append(h('p', { class: 'error' }, `This step failed: ${(e as Error).message}`));
    throw e;
  }
}

async function advance(all: boolean): Promise<void> {
  if (busy) return;
  busy = true;
  nextBtn.disabled = allBtn.disabled = true;
  try {
    do {
      await runStep(cursor);
      cursor++;
      document.getElementById(STEPS[cursor - 1]!.id)!.scrollIntoView({ behavior: 'smooth', block: 'start' });
    } while (all && cursor < STEPS.length);
    if (cursor >= STEPS.length) {
      status.textContent = 'Done: one token went from purchase to redemption. Try to match the tokens to the issuer’s records in step 6.';
      status.dataset.done = 'true';
      nextBtn.textContent = 'Walk complete';
      return;
    }
    status.textContent = `Step ${cursor} done. Next: ${STEPS[cursor]!.title}.`;
    nextBtn.textContent = `Run step ${cursor + 1}`;
    nextBtn.disabled = allBtn.disabled = false;
  } catch (e) {
    status.textContent = `Stopped: ${(e as Error).message}`;
    status.dataset.error = 'true';
  } finally {
    busy = false;
  }
}

// ---------------------------------------------------------------- helpers

function currentKey(keys: DirKey[], purpose: Purpose): DirKey | undefined {
  const now = Date.now() / 1000;
  return keys
    .filter((k) => (k.purpose ?? 'credit') === purpose && (k['not-before'] ?? 0) <= now)
    .sort((a, b) => (b['not-before'] ?? 0) - (a['not-before'] ?? 0))[0];
}

/** TokenChallenge for LLM-Tor: this issuer, no redemption context, no origin (context-free). */
function encodeChallenge(issuerName: string): Uint8Array {
  const name = new TextEncoder().encode(issuerName);
  return concat(new Uint8Array([0, TOKEN_TYPE_BLIND_RSA, name.length >> 8, name.length & 0xff]), name, new Uint8Array([0, 0, 0]));
}

function tokenFields(t: Uint8Array) {
  return [
    { name: 'token_type', bytes: t.subarray(0, 2), note: '0x0002 = Blind RSA (2048-bit)' },
    { name: 'nonce', bytes: t.subarray(2, 34), note: 'random, made in this tab' },
    { name: 'challenge_digest', bytes: t.subarray(34, 66), note: 'SHA-256(TokenChallenge)' },
    { name: 'token_key_id', bytes: t.subarray(66, 98), note: 'SHA-256 of the key’s SPKI' },
    ...(t.length > 98 ? [{ name: 'authenticator', bytes: t.subarray(98), note: 'the RSA-PSS signature, unblinded' }] : []),
  ];
}

function requestFields(r: TokenRequest) {
  const b = encodeTokenRequest(r);
  return [
    { name: 'token_type', bytes: b.subarray(0, 2) },
    { name: 'truncated_token_key_id', bytes: b.subarray(2, 3), note: 'last byte of token_key_id' },
    { name: 'blinded_msg', bytes: b.subarray(3), note: 'encode(token input) · rᵉ mod n' },
  ];
}

function parseSse(text: string): string {
  return text
    .split('\n\n')
    .map((e) => e.replace(/^data: ?/, ''))
    .filter((d) => d && d !== '[DONE]')
    .map((d) => (JSON.parse(d) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '')
    .join('');
}

const letter = (i: number) => LETTERS[i] ?? String(i + 1);

// ---------------------------------------------------------------- the steps

const STEPS: Step[] = [
  {
    id: 'step-directory',
    title: 'Fetch the issuer directory',
    lede: 'The client learns the public keys from the directory everyone sees. A key handed to one user only could tag that user, so the client takes THE current key of each purpose and checks its id.',
    async run(o) {
      const res = await expectOk(await fetch('/.well-known/private-token-issuer-directory', { credentials: 'omit' }), 'directory');
      const dir = (await res.json()) as { 'issuer-request-uri': string; 'issuer-name'?: string; 'token-keys': DirKey[] };
      st.issuerName = dir['issuer-name'] ?? 'llmtor.local';
      for (const purpose of ['credit', 'permanent', 'transient'] as const) {
        const k = currentKey(dir['token-keys'], purpose);
        if (!k) throw new Error(`the directory lists no current ${purpose} key`);
        const spki = fromBase64Url(k['token-key']);
        st.keys[purpose] = { purpose, ...(k.epoch ? { epoch: k.epoch } : {}), spki, keyId: await sha256(spki), key: await importTokenKey(spki) };
      }
      const seen = rows([
        { k: 'request', v: 'GET /.well-known/private-token-issuer-directory' },
        { k: 'answer', v: `${dir['token-keys'].length} public keys — the same document for every client` },
      ]);
      o.issuer.append(seen, nothing('Nothing about you: it cannot tell this fetch from anyone else’s.'));
      o.redeemer.append(nothing('Nothing: this fetch went to the public directory. The redeemer verifies tokens with these same public keys.'));
      o.detail.append(
        h(
          'table',
          { class: 'keys' },
          h('thead', {}, h('tr', {}, h('th', {}, 'purpose'), h('th', {}, 'token_key_id (SHA-256 of the SPKI)'), h('th', {}, 'modulus'))),
          h('tbody', {}, ...(['credit', 'permanent', 'transient'] as const).map((p) => {
            const k = st.keys[p]!;
            return h('tr', {}, h('td', {}, `${p}${k.epoch ? ` (epoch ${k.epoch})` : ''}`), h('td', { class: 'mono' }, toHex(k.keyId)), h('td', {}, `${k.key.modBits} bits, e = ${k.key.e}`));
          })),
        ),
        h('p', { class: 'refline' }, 'Issuer name for the TokenChallenge: ', h('code', {}, st.issuerName), ' ', refLink(REF.directory), refLink(REF.docsKeys)),
      );
    },
  },
  {
    id: 'step-account',
    title: 'Open an account and get credits (identity known)',
    lede: 'An account is a random key, like a Mullvad account number: no e-mail, no name. A real account buys credits with Stripe Checkout; this demo server grants some. One credit = one token.',
    async run(o) {
      const created = (await (await expectOk(await post('/v1/accounts', {}), 'create account')).json()) as { account_key: string };
      st.accountKey = created.account_key;
      const at = new Date();
      if (!config.demoCredits) throw new Error('this server hands out no demo credits (they exist only on the embedded defaults: `make demo`)');
      const credits = (await (await expectOk(await post('/demo/credits', { headers: { authorization: `Bearer ${st.accountKey}` } }), 'demo credits')).json()) as { balance: number };
      o.issuer.append(
        rows([
          { k: 'account', v: `${st.accountKey.slice(0, 9)}… (it stores a keyed hash only)`, mono: true },
          { k: 'payment', v: `+${credits.balance} credits (demo grant; else a Stripe payment)` },
          { k: 'when', v: time(at) },
        ]),
      );
      o.redeemer.append(nothing('Nothing. The redeemer never sees accounts or payments.'));
      o.detail.append(h('p', {}, 'Your demo account key (shown once, kept only in this tab): ', h('code', { class: 'acct' }, st.accountKey), `. Balance: ${credits.balance} credits.`));
    },
  },
  {
    id: 'step-blind',
    title: 'Blind the tokens, in this browser',
    lede: `The tab makes ${BATCH} credit tokens and the two abuse tokens: a random nonce each, then blinds each with a random factor r. Nothing is sent in this step; r and the nonces never leave the tab.`,
    async run(o) {
      const challenge = encodeChallenge(st.issuerName!);
      st.digest = await sha256(challenge);
      const make = async (purpose: Purpose, label: string): Promise<Issued> => {
        const k = st.keys[purpose]!;
        const input = encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: randomBytes(32), challengeDigest: st.digest!, tokenKeyId: k.keyId });
        const blinded = await blind(k.key, input);
        return { purpose, label, input, blinded, request: { tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: k.keyId[31]!, blindedMsg: blinded.blindedMsg } };
      };
      const t0 = performance.now();
      st.issued = [];
      for (let i = 0; i < BATCH; i++) st.issued.push(await make('credit', `token ${letter(i)}`));
      st.abuse = { permanent: await make('permanent', 'permanent abuse token'), transient: await make('transient', 'transient abuse token') };
      const ms = performance.now() - t0;
      o.issuer.append(nothing('Nothing yet: blinding happens offline.'));
      o.redeemer.append(nothing('Nothing.'));
      const a = st.issued[0]!;
      o.detail.append(
        struct('TokenChallenge', [
          { name: 'token_type', bytes: challenge.subarray(0, 2) },
          { name: 'issuer_name', bytes: challenge.subarray(2, challenge.length - 3), note: `u16 length + "${st.issuerName}"` },
          { name: 'redemption_context', bytes: challenge.subarray(challenge.length - 3, challenge.length - 2), note: 'empty: tokens are prefetched, not per request' },
          { name: 'origin_info', bytes: challenge.subarray(challenge.length - 2), note: 'empty: any origin' },
        ], [REF.challenge, REF.docsChallenge], 'the client derives it itself and refuses any other'),
        struct('token input (token A)', tokenFields(a.input), [REF.token, REF.blindRsa], 'what will be signed, still hidden from the issuer'),
        h('p', { class: 'secret' }, 'Secret blinding factor r of token A (stays here): ', h('code', {}, `${toBytes(a.blinded.r, 256).length} bytes, ${short(toBytes(a.blinded.r, 256), 12)}`)),
        struct('TokenRequest (token A)', requestFields(a.request), [REF.request, REF.docsClient], 'what the issuer will receive'),
        h('p', { class: 'meta' }, `Blinded ${BATCH + 2} tokens in ${ms.toFixed(0)} ms (BigInt in this tab; SHA-384 with WebCrypto).`),
      );
    },
  },
  {
    id: 'step-sign',
    title: 'Ask the issuer to sign (one batched request)',
    lede: `One POST carries the ${BATCH} blinded credit requests. The issuer checks the account, debits ${BATCH} credits and signs each blinded message — it signs values that look uniformly random to it. The abuse tokens go the same way, one request each.`,
    async run(o) {
      const auth = { authorization: `Bearer ${st.accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST };
      const body = encodeBatchTokenRequest(st.issued.map((x) => x.request));
      const at = new Date();
      const res = await expectOk(await post(config.issuerRequestPath, { headers: auth, body: body as Uint8Array<ArrayBuffer> }), 'issuance');
      const respBytes = new Uint8Array(await res.arrayBuffer());
      const responses = decodeBatchTokenResponse(respBytes);
      responses.forEach((r, i) => {
        if (!r) throw new Error(`the issuer refused request ${i + 1}`);
        st.issued[i]!.blindSig = r.blindSig;
      });
      st.records = st.issued.map((x) => ({ at, blindedMsg: x.request.blindedMsg, blindSig: x.blindSig! }));
      for (const kind of ['permanent', 'transient'] as const) {
        const x = st.abuse[kind]!;
        const r = await expectOk(await post(config.issuerRequestPath, { headers: auth, body: encodeBatchTokenRequest([x.request]) as Uint8Array<ArrayBuffer> }), `${kind} abuse token`);
        x.blindSig = decodeBatchTokenResponse(new Uint8Array(await r.arrayBuffer()))[0]!.blindSig;
      }
      o.issuer.append(
        rows([
          { k: 'account', v: `${st.accountKey!.slice(0, 9)}…`, mono: true },
          { k: 'when', v: time(at) },
          { k: 'request', v: `POST ${config.issuerRequestPath}, ${body.length} bytes, ${BATCH} TokenRequests` },
          { k: 'debited', v: `${BATCH} credits` },
        ]),
        h('ol', { class: 'recs' }, ...st.records.map((r) => h('li', {}, 'blinded_msg ', h('code', {}, short(r.blindedMsg)), ' → blind_sig ', h('code', {}, short(r.blindSig))))),
        h('p', { class: 'small' }, '+ one permanent and one transient abuse-token request (allowed once per account / per month).'),
      );
      o.redeemer.append(nothing('Nothing. Issuance and redemption never share a connection (in production: not even a Tor circuit).'));
      o.detail.append(
        struct('GenericBatchTokenRequest (head)', [
          { name: 'length (varint)', bytes: body.subarray(0, body.length - BATCH * 259), note: `${BATCH} × 259 bytes follow` },
          ...requestFields(st.issued[0]!.request).map((f) => ({ ...f, name: `[0].${f.name}` })),
        ], [REF.batch, REF.docsBatch], `${body.length} bytes in all; items 1–${BATCH - 1} alike`),
        struct('TokenResponse (token A)', [{ name: 'blind_sig', bytes: st.issued[0]!.blindSig!, note: 'blinded_msgᵈ mod n, checked by the issuer before sending (RFC 9474 §4.3)' }], [REF.response, REF.docsBatch], `inside a ${respBytes.length}-byte GenericBatchTokenResponse`),
      );
    },
  },
  {
    id: 'step-finalize',
    title: 'Unblind and verify, in this browser',
    lede: 'The tab divides r out of each blind signature: what is left is an ordinary RSA-PSS signature over the token input, which the issuer has never seen. WebCrypto checks it against the directory’s key (RSA-PSS, SHA-384, salt 48).',
    async run(o) {
      const verified: string[] = [];
      for (const x of [...st.issued, st.abuse.permanent!, st.abuse.transient!]) {
        const k = st.keys[x.purpose]!;
        const sig = await finalize(k.key, x.input, x.blindSig!, x.blinded.inv);
        x.token = encodeToken({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: x.input.subarray(2, 34), challengeDigest: x.input.subarray(34, 66), tokenKeyId: x.input.subarray(66, 98), authenticator: sig });
        verified.push(x.label);
      }
      o.issuer.append(nothing('Nothing: unblinding happens offline.'));
      o.redeemer.append(nothing('Nothing yet.'));
      o.detail.append(
        h('p', { class: 'ok', id: 'verified' }, `✓ ${verified.length} tokens verify with crypto.subtle.verify (RSA-PSS, SHA-384, saltLength 48): ${verified.join(', ')}.`),
        struct('Token (token A)', tokenFields(st.issued[0]!.token!), [REF.token, REF.docsAuth], 'what the redeemer will receive'),
        h('p', { class: 'meta' }, 'Compare: the blinded_msg the issuer signed in step 4 and this authenticator share no bytes and no computable relation without r.'),
      );
    },
  },
  {
    id: 'step-match',
    title: 'Try to match them',
    lede: `Play the issuer: it kept its ${BATCH} records (blinded_msg, blind_sig) and later sees ${BATCH} tokens. A record and a token can belong together only if some blinding factor r′ turns the token’s message into the record’s blinded_msg. The issuer can compute that r′ = blind_sig · authenticator⁻¹ mod n and check r′ᵉ · (authenticatorᵉ mod n) ≡ blinded_msg. Shuffle the tokens and check any matching you like.`,
    async run(o) {
      st.order = st.issued.map((_, i) => i);
      o.issuer.append(h('ol', { class: 'recs' }, ...st.records.map((r, i) => h('li', {}, `record ${i + 1} `, h('code', {}, short(r.blindedMsg)), ` at ${time(r.at)}`))));
      o.redeemer.append(h('ul', { class: 'recs' }, ...st.issued.map((x) => h('li', {}, `${x.label}: authenticator `, h('code', {}, short(x.token!.subarray(98)))))));
      const board = h('div', { class: 'match' });
      const result = h('div', { class: 'match-result', id: 'match-result' });
      const drawBoard = () =>
        board.replaceChildren(
          ...st.records.map((r, i) =>
            h(
              'div',
              { class: 'pair' },
              h('span', { class: 'rec' }, `issuer record ${i + 1}`, h('code', {}, short(r.blindedMsg, 6))),
              h('span', { class: 'arrow' }, '⟷'),
              h('span', { class: 'tok', 'data-token': letter(st.order[i]!) }, st.issued[st.order[i]!]!.label, h('code', {}, short(st.issued[st.order[i]!]!.token!.subarray(98), 6))),
            ),
          ),
        );
      const shuffle = h('button', { id: 'shuffle' }, 'Shuffle the tokens');
      const check = h('button', { id: 'check', class: 'primary' }, 'Check this matching');
      const reveal = h('button', { id: 'reveal' }, 'Reveal what only this tab knows');
      shuffle.addEventListener('click', () => {
        for (let i = st.order.length - 1; i > 0; i--) {
          const j = crypto.getRandomValues(new Uint32Array(1))[0]! % (i + 1);
          [st.order[i], st.order[j]] = [st.order[j]!, st.order[i]!];
        }
        drawBoard();
        result.replaceChildren();
      });
      check.addEventListener('click', () => {
        const key = st.keys.credit!.key;
        const lines = st.records.map((r, i) => {
          const t = st.issued[st.order[i]!]!;
          const e = explainPair(key, r.blindedMsg, r.blindSig, t.token!.subarray(98));
          return h('li', { class: e.consistent ? 'ok' : 'bad' }, `record ${i + 1} ⟷ ${t.label}: r′ = `, h('code', {}, `${toHex(toBytes(e.r, 256)).slice(0, 16)}…`), e.consistent ? ' ✓ consistent' : ' ✗ inconsistent');
        });
        result.replaceChildren(h('ul', { class: 'checks' }, ...lines), h('p', {}, 'Every row checks out — for this matching and for any other. That is no accident: RSA is one-to-one, so every record–token pair has exactly one r′ that explains it, and the real r were drawn uniformly at random. The records cannot say which matching is the real one (RFC 9474 calls this blindness).'));
      });
      reveal.addEventListener('click', () => {
        const key = st.keys.credit!.key;
        const right = st.records.map((r, i) => explainPair(key, r.blindedMsg, r.blindSig, st.issued[i]!.token!.subarray(98)).r === st.issued[i]!.blinded.r);
        result.replaceChildren(
          h('p', {}, `The true matching is record 1 ⟷ token A, 2 ⟷ B, 3 ⟷ C, 4 ⟷ D. Only this tab can tell: for the true pairs r′ equals the r it drew in step 3 (${right.every(Boolean) ? 'checked ✓' : 'mismatch!'}), for the others r′ is just another number in [1, n) — and to the issuer every r is a uniformly random secret it never saw.`),
        );
      });
      drawBoard();
      // The whole grid: every record against every token.
      const key = st.keys.credit!.key;
      let consistent = 0;
      const grid = h(
        'table',
        { class: 'grid', id: 'match-grid' },
        h('thead', {}, h('tr', {}, h('th', {}, ''), ...st.issued.map((x) => h('th', {}, x.label)))),
        h('tbody', {}, ...st.records.map((r, i) =>
          h('tr', {}, h('th', {}, `record ${i + 1}`), ...st.issued.map((x) => {
            const ok = explainPair(key, r.blindedMsg, r.blindSig, x.token!.subarray(98)).consistent;
            if (ok) consistent++;
            return h('td', { class: ok ? 'ok' : 'bad' }, ok ? '✓' : '✗');
          })),
        )),
      );
      o.detail.append(
        h('div', { class: 'controls' }, shuffle, check, reveal),
        board,
        result,
        h('h4', {}, `All ${BATCH * BATCH} record × token pairs, checked the issuer’s way: ${consistent} of ${BATCH * BATCH} consistent`),
        grid,
        h('p', { class: 'refline' }, 'Why: ', refLink(REF.docsUnlink), refLink(REF.blindRsa)),
      );
    },
  },
  {
    id: 'step-redeem',
    title: 'Redeem, anonymously (streamed)',
    lede: 'The tab sends a prompt with one credit token and the two abuse tokens (a pseudonym, on purpose, for abuse control). No account key, no cookie. A real client sends this over Tor on a fresh circuit, at a time unrelated to issuance; here it is the same loopback server.',
    async run(o) {
      const models = (await (await expectOk(await fetch('/v1/models', { credentials: 'omit' }), 'models')).json()) as { data: { id: string; llmtor: { price_credits: number; bytes_per_credit: number } }[] };
      const model = models.data[0]!;
      const body = JSON.stringify({ model: model.id, stream: true, messages: [{ role: 'user', content: PROMPT }] });
      const k = model.llmtor.price_credits * Math.max(1, Math.ceil(new TextEncoder().encode(body).length / model.llmtor.bytes_per_credit));
      const tokens = st.issued.slice(0, k);
      const authz = `PrivateToken token="${toBase64Url(tokens[0]!.token!, true)}"${tokens.length > 1 ? `, additional-tokens="${tokens.slice(1).map((t) => toBase64Url(t.token!, true)).join(',')}"` : ''}`;
      const headers = { 'content-type': 'application/json', authorization: authz, 'llmtor-abuse': `permanent=${toBase64Url(st.abuse.permanent!.token!)}, transient=${toBase64Url(st.abuse.transient!.token!)}` };
      st.redeem = { headers, body, tokens };
      const at = new Date();
      const answer = h('div', { class: 'answer', id: 'answer' });
      o.detail.append(h('h4', {}, `Answer, as it streams (${model.id}: the LOCAL STAND-IN upstream, canned text, not an LLM)`), answer);
      o.issuer.append(nothing('Nothing. The issuer is not asked, and could not link these tokens to step 4 if it were.'));
      o.redeemer.append(
        rows([
          { k: 'when', v: time(at) },
          { k: 'request', v: `POST /v1/chat/completions (${model.id}, stream)` },
          { k: 'Authorization', v: `PrivateToken token="${toBase64Url(tokens[0]!.token!, true).slice(0, 18)}…" (${tokens.map((t) => t.label).join(', ')})`, mono: true },
          { k: 'LLMTor-Abuse', v: 'permanent=…, transient=… (a pseudonym: not the account)', mono: true },
          { k: 'prompt', v: PROMPT },
          { k: 'account', v: 'none' },
        ]),
      );
      const res = await post('/v1/chat/completions', { headers, body });
      if (!res.ok || !res.body) throw new Error(`redemption: HTTP ${res.status} ${await res.text()}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      let text = '';
      let events = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let i: number;
        while ((i = buffered.indexOf('\n\n')) >= 0) {
          const delta = parseSse(buffered.slice(0, i + 2));
          buffered = buffered.slice(i + 2);
          if (delta) events++;
          text += delta;
          answer.textContent = text;
        }
      }
      st.answer = text;
      o.detail.append(
        h('p', { class: 'meta' }, `${events} server-sent events. The redeemer checked the signatures, marked ${tokens.length === 1 ? 'the token' : 'the tokens'} spent (it stores a hash, never the token) and cached the answer encrypted under a key only the token itself gives.`),
        struct('Token (as sent in Authorization, token A)', tokenFields(tokens[0]!.token!), [REF.token, REF.docsAuth, REF.docsRedemption]),
      );
    },
  },
  {
    id: 'step-replay',
    title: 'Replay the same token on another request: refused',
    lede: 'A token buys one request. Presenting it again with a different question is a replay: the redeemer finds its hash in the spent set and refuses.',
    async run(o) {
      const r = st.redeem!;
      const other = JSON.stringify({ model: (JSON.parse(r.body) as { model: string }).model, messages: [{ role: 'user', content: 'A different question with the same token.' }] });
      const at = new Date();
      const res = await post('/v1/chat/completions', { headers: r.headers, body: other });
      const j = (await res.json()) as { error?: { code: string; message: string } };
      if (res.ok) throw new Error('the replay was accepted');
      o.issuer.append(nothing('Nothing.'));
      o.redeemer.append(rows([{ k: 'when', v: time(at) }, { k: 'token', v: `${r.tokens[0]!.label} again` }, { k: 'prompt', v: 'A different question with the same token.' }, { k: 'answer', v: `${res.status} ${j.error?.code ?? ''}` }]));
      o.detail.append(h('p', { class: 'refused', id: 'replay-result' }, `HTTP ${res.status} ${j.error?.code ?? ''}: ${j.error?.message ?? ''}`));
    },
  },
  {
    id: 'step-retry',
    title: 'Retry the same request: served from the cache',
    lede: 'The network dropped the answer, so the client sends the very same request with the same token. It gets the same answer back, not a second charge: the cached answer opens only with that token.',
    async run(o) {
      const r = st.redeem!;
      const at = new Date();
      const res = await expectOk(await post('/v1/chat/completions', { headers: r.headers, body: r.body }), 'retry');
      const again = parseSse(await res.text());
      const replayed = res.headers.get('llmtor-replay');
      const same = again === st.answer;
      o.issuer.append(nothing('Nothing.'));
      o.redeemer.append(rows([{ k: 'when', v: time(at) }, { k: 'token', v: `${r.tokens[0]!.label} again` }, { k: 'prompt', v: 'the same request, byte for byte' }, { k: 'answer', v: `200, llmtor-replay: ${replayed}` }]));
      o.detail.append(h('p', { class: same && replayed === 'true' ? 'ok' : 'error', id: 'retry-result' }, `HTTP ${res.status}, llmtor-replay: ${replayed}; same answer: ${same ? 'yes' : 'no'}; no second token spent.`));
      if (!same || replayed !== 'true') throw new Error('the retry was not served from the cache');
      o.detail.append(
        h('div', { class: 'summary' },
          h('h4', {}, 'What each side holds at the end'),
          rows([
            { k: 'issuer', v: `an account, ${BATCH} credits spent at ${time(st.records[0]!.at)}, ${BATCH} blinded messages it signed` },
            { k: 'redeemer', v: `a spent-token hash, a pseudonym, one prompt at some time, an encrypted cached answer` },
            { k: 'the link', v: 'only in this tab: the nonces and blinding factors r. Close it and the link is gone.' },
          ]),
        ),
      );
    },
  },
];

// ---------------------------------------------------------------- start

nextBtn.addEventListener('click', () => void advance(false));
allBtn.addEventListener('click', () => void advance(true));
app.replaceChildren(
  h(
    'header',
    {},
    h('h1', {}, 'LLM-Tor ', h('span', { class: 'sub' }, 'interactive protocol demo')),
    h('p', { class: 'intro' }, 'Follow tokens from purchase to redemption. The client side runs in this browser tab: it blinds, unblinds and verifies the tokens itself, and talks only to this server — the issuer (which knows your account) and the redeemer (which sees your prompts). At each step, compare what the two sides saw: nothing in one lets them find you in the other.'),
    h('div', { class: 'legend' }, h('span', { class: 'chip issuer' }, 'issuer: issuance side'), h('span', { class: 'chip redeemer' }, 'redeemer: anonymous side'), h('span', { class: 'chip tab' }, 'this tab: the only place both meet')),
  ),
  h('div', { class: 'bar' }, h('div', { class: 'controls' }, nextBtn, allBtn), status),
  ...STEPS.map(sectionFor),
  h('footer', {}, 'Specs: ', refLink(REF.token), refLink(REF.request), refLink(REF.blindRsa), refLink(REF.batch), ' · This page loads nothing from other sites (strict Content-Security-Policy).'),
);
