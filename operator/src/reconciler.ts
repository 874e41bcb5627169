/**
 * One reconcile of one TokenIssuer: read the issuer and its Secret, plan
 * (schedule.ts, pure), carry the plan out, write Secret, ConfigMap, status and
 * events. The Secret is written in one conditional replace (resourceVersion),
 * so a crash leaves either the old or the new key set, never half of one;
 * everything else (ConfigMap, status) is derived from the Secret again on the
 * next reconcile. Keys are removed only by the plan, i.e. only after their
 * redemption window; on any Key Vault failure nothing at all is written but
 * the status.
 */
import type { KeyObject } from 'node:crypto';
import type { CoreV1Event, V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { describeKekRef, fromBase64Url, rewrapSigningKey, sealSigningKey, tokenKeyId, truncatedKeyId, type KeyMetadata, type KeyUnwrapper, type KeyWrapper, type LocalKeyEncryptionKey, type SigningKeyFile } from '@llmtor/protocol';
import { generateSigningKey } from '@llmtor/protocol/server';
import type { Clock } from './clock.js';
import { CompositeUnwrapper, classifyKeyVaultError, localKek, newLocalKekPem, type AzureKeyVaultKek } from './kek.js';
import { directoryConfigMapData, keySecretData, metadataOf, parseKeySecret, sameData } from './keySecret.js';
import { isApiStatus, type ClusterApi, type IssuerObject } from './kubeApi.js';
import type { OperatorMetrics } from './metrics.js';
import { plan, takenTruncatedIds, type KeyTemplate, type ObservedKey, type Plan } from './schedule.js';
import { API_VERSION, GROUP, HANDLED_ROTATION_ANNOTATION, ISSUER_LABEL, KEEP_ANNOTATION, KEEP_NOTE, KIND, LOCAL_KEK_DATA_KEY, MANAGED_BY, MANAGED_BY_LABEL, REVOKE_REDEMPTION_ANNOTATION, ROTATE_ANNOTATION, SpecError, issuerPolicy, type IssuerPolicy } from './spec.js';
import { Reason, backoffMs, currentCreditKey, currentEpoch, getCondition, isoSeconds, keyState, keyVaultCondition, nextRotationOf, readyCondition, rotatingCondition, setCondition, shortKeyId, statusKeys, type Condition, type ConditionInput, type FailureReason, type IssuerStatus } from './status.js';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ReconcilerOptions {
  api: ClusterApi;
  clock: Clock;
  /** Key Vault adapter for a vault and key name (main.ts: DefaultAzureCredential). */
  keyVault?: (vaultUrl: string, keyName: string) => AzureKeyVaultKek;
  metrics?: OperatorMetrics;
  log?: LogFn;
  /** Back-off after consecutive failures: base · 2^(n-1), capped. */
  backoff?: { baseMs: number; maxMs: number };
  /** RSA-2048 key generator (tests may inject to force truncated-id collisions). */
  generateKey?: () => Promise<KeyObject>;
  /** Name of this replica, shown on events. */
  identity?: string;
}

export interface ReconcileResult {
  outcome: 'ok' | 'failed' | 'conflict' | 'invalid' | 'gone';
  /** Reconcile again after this long (the next instant the plan changes, or the back-off). */
  requeueAfterMs?: number;
}

interface Kek {
  wrapper: KeyWrapper;
  unwrapper: KeyUnwrapper;
  description: string;
}

class KekError extends Error {
  constructor(readonly reason: FailureReason, message: string) {
    super(message);
    this.name = 'KekError';
  }
}

const MAX_COLLISION_RETRIES = 64;

/**
 * Reasons of the events the reconciler records (kubectl get events), beside the
 * condition reasons (`Reason`, which events of a failure also carry).
 */
export const EventReason = {
  KeyPublished: 'KeyPublished',
  EpochKeyPublished: 'EpochKeyPublished',
  KeyRotated: 'KeyRotated',
  EmergencyKeyRotated: 'EmergencyKeyRotated',
  KeyRetired: 'KeyRetired',
  KeyRemoved: 'KeyRemoved',
  KeyWithdrawn: 'KeyWithdrawn',
  KeyRevoked: 'KeyRevoked',
  KeyRewrapped: 'KeyRewrapped',
  KeyEncryptionKeyCreated: 'KeyEncryptionKeyCreated',
  OwnerReferenceRemoved: 'OwnerReferenceRemoved',
  RotationRequested: 'RotationRequested',
  EmergencyRotationRequested: 'EmergencyRotationRequested',
  RotationPaused: 'RotationPaused',
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

export class Reconciler {
  private readonly api: ClusterApi;
  private readonly clock: Clock;
  private readonly log: LogFn;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly generateKey: () => Promise<KeyObject>;
  private readonly vaults = new Map<string, AzureKeyVaultKek>();

  constructor(private readonly opts: ReconcilerOptions) {
    this.api = opts.api;
    this.clock = opts.clock;
    this.log = opts.log ?? (() => undefined);
    this.backoff = opts.backoff ?? { baseMs: 5_000, maxMs: 300_000 };
    this.generateKey = opts.generateKey ?? (() => generateSigningKey());
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const end = this.opts.metrics?.duration.startTimer();
    try {
      const r = await this.reconcileInner(namespace, name);
      this.opts.metrics?.reconciles.inc({ result: r.outcome });
      return r;
    } finally {
      end?.();
    }
  }

  private async reconcileInner(namespace: string, name: string): Promise<ReconcileResult> {
    const issuer = await this.api.getIssuer(namespace, name);
    if (!issuer) return { outcome: 'gone' };
    const now = this.clock.now();
    let policy: IssuerPolicy;
    try {
      policy = issuerPolicy(name, issuer.spec);
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      return this.invalidSpec(issuer, e, now);
    }
    try {
      return await this.reconcileIssuer(issuer, policy, now);
    } catch (e) {
      if (isApiStatus(e, 409)) return { outcome: 'conflict', requeueAfterMs: 0 };
      return this.failed(issuer, policy, e instanceof KekError ? e.reason : Reason.ReconcileFailed, e instanceof Error ? e.message : String(e), now, undefined);
    }
  }

  private async reconcileIssuer(issuer: IssuerObject, policy: IssuerPolicy, now: number): Promise<ReconcileResult> {
    const { namespace, name } = issuer.metadata;
    const secret = await this.api.getSecret(namespace, policy.secretName);
    const parsed = parseKeySecret(secret?.data);
    const observed: ObservedKey[] = [...parsed.files.values()].map((f) => ({ meta: metadataOf(f), kek: f.privateKey.type === 'envelope' ? f.privateKey.kek : null }));
    const rotateRequest = issuer.metadata.annotations?.[ROTATE_ANNOTATION];
    const handledRotation = secret?.metadata?.annotations?.[HANDLED_ROTATION_ANNOTATION];

    let kek: Kek | undefined;
    if (!policy.paused) {
      try {
        kek = await this.resolveKek(issuer, policy, parsed.files, now);
      } catch (e) {
        const f = e instanceof KekError ? e : new KekError(Reason.KeyEncryptionKeyUnavailable, e instanceof Error ? e.message : String(e));
        // Nothing is written but the status: no key is generated, re-wrapped or removed without a working KEK.
        const blocked = plan({ policy, keys: observed, now, rotateRequest, handledRotation });
        return this.failed(issuer, policy, f.reason, f.message, now, { files: parsed.files, plan: blocked });
      }
    }

    const revokeRedemption = issuer.metadata.annotations?.[REVOKE_REDEMPTION_ANNOTATION] === 'true';
    const steps = plan({ policy, keys: observed, now, rotateRequest, handledRotation, currentKek: kek?.wrapper.ref, revokeRedemption });
    if (steps.rewriteRotateAnnotation) {
      // 'now' becomes a fixed time first (conditional on the object's version): the request is then carried out exactly once.
      await this.api.patchIssuerAnnotations(namespace, name, { [ROTATE_ANNOTATION]: steps.rewriteRotateAnnotation }, issuer.metadata.resourceVersion ?? '');
      const emergency = steps.rewriteRotateAnnotation.startsWith('compromised');
      await this.event(issuer, emergency ? 'Warning' : 'Normal', emergency ? EventReason.EmergencyRotationRequested : EventReason.RotationRequested, `${emergency ? 'emergency ' : ''}rotation requested by annotation ${ROTATE_ANNOTATION}=${rotateRequest}, recorded as ${steps.rewriteRotateAnnotation}`);
      return { outcome: 'ok', requeueAfterMs: 0 };
    }
    const rotationNote = steps.pausedRotateRequest ?? steps.refusedRotateRequest;
    if (rotationNote && getCondition(issuer.status, 'Rotating')?.message !== rotationNote) {
      await this.event(issuer, 'Warning', steps.pausedRotateRequest ? EventReason.RotationPaused : Reason.RotationRefused, rotationNote);
    }

    // --- carry out the plan on a copy of the key files
    const files = new Map(parsed.files);
    const removed: KeyMetadata[] = [];
    const notes: { type: 'Normal' | 'Warning'; reason: EventReason; message: string }[] = [];
    for (const id of steps.remove) {
      const f = files.get(id)!;
      removed.push(metadataOf(f));
      files.delete(id);
      notes.push({ type: 'Normal', reason: EventReason.KeyRemoved, message: `${f.purpose}${f.epoch ? ` ${f.epoch}` : ''} key ${shortKeyId(id)} removed: its redemption window ended ${f.redemptionEnd}` });
    }
    for (const id of steps.withdraw) {
      const f = files.get(id)!;
      files.delete(id);
      notes.push({ type: 'Normal', reason: EventReason.KeyWithdrawn, message: `${f.purpose}${f.epoch ? ` ${f.epoch}` : ''} key ${shortKeyId(id)} withdrawn before it signed (it would have taken over at ${f.notBefore}): replaced by the rotation` });
    }
    for (const id of steps.revoke) {
      const f = files.get(id)!;
      removed.push({ ...metadataOf(f), issuanceEnd: new Date(Math.min(now, Date.parse(f.issuanceEnd))).toISOString(), redemptionEnd: new Date(now).toISOString() });
      files.delete(id);
      notes.push({ type: 'Warning', reason: EventReason.KeyRevoked, message: `${f.purpose}${f.epoch ? ` ${f.epoch}` : ''} key ${shortKeyId(id)} revoked (${REVOKE_REDEMPTION_ANNOTATION}=true): tokens signed under it are rejected from now on` });
    }
    for (const r of steps.retire) {
      const f = files.get(r.keyId)!;
      files.set(r.keyId, { ...f, issuanceEnd: new Date(r.issuanceEnd).toISOString() });
    }
    const rewrapProblems: string[] = [];
    for (const id of steps.rewrap) {
      const f = files.get(id)!;
      try {
        files.set(id, await rewrapSigningKey(f, kek!.unwrapper, kek!.wrapper));
        this.opts.metrics?.keysRewrapped.inc();
        notes.push({ type: 'Normal', reason: EventReason.KeyRewrapped, message: `key ${shortKeyId(id)} re-wrapped from ${describeKek(f)} to ${kek!.description}` });
      } catch (e) {
        // Not fatal: the file still opens with its old KEK; rotations must not wait for it.
        rewrapProblems.push(`key ${shortKeyId(id)} could not be re-wrapped (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    for (const t of steps.generate) {
      const f = await this.generate(t, files.values(), kek!.wrapper, now);
      files.set(f.keyId, f);
      this.opts.metrics?.keysGenerated.inc({ purpose: t.purpose, reason: t.reason });
      notes.push({ type: t.reason === 'emergency' ? 'Warning' : 'Normal', reason: t.reason === 'forced' ? EventReason.KeyRotated : t.reason === 'emergency' ? EventReason.EmergencyKeyRotated : t.reason === 'epoch' ? EventReason.EpochKeyPublished : EventReason.KeyPublished, message: describeGenerated(f, t) });
    }
    if (steps.retire.length) notes.push({ type: 'Normal', reason: EventReason.KeyRetired, message: `issuance of ${steps.retire.map((r) => `${shortKeyId(r.keyId)} ends ${new Date(r.issuanceEnd).toISOString()}`).join(', ')} (rotation request); their tokens stay redeemable until their redemption windows end` });

    // --- write the Secret (one conditional write: all or nothing)
    // No owner reference: the keys must outlive the TokenIssuer (helm uninstall, a rename) while tokens
    // signed under them can still be redeemed; the garbage collector would delete them with it.
    const data = keySecretData(files.values());
    const newHandled = steps.handledRotation ?? handledRotation;
    const owner = ownerReference(issuer);
    const legacyOwners = (secret?.metadata?.ownerReferences ?? []).filter((o) => o.apiVersion.startsWith(`${GROUP}/`) && o.kind === KIND);
    if (!secret) {
      await this.api.createSecret(namespace, {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: policy.secretName, namespace, labels: ownedLabels(name), annotations: { [KEEP_ANNOTATION]: KEEP_NOTE, ...(newHandled ? { [HANDLED_ROTATION_ANNOTATION]: newHandled } : {}) } },
        data,
      });
    } else if (!sameData(secret.data, data) || newHandled !== handledRotation || legacyOwners.length) {
      const metadata = { ...secret.metadata!, labels: { ...secret.metadata?.labels, ...ownedLabels(name) }, annotations: { ...secret.metadata?.annotations, [KEEP_ANNOTATION]: KEEP_NOTE } as Record<string, string> };
      if (newHandled) metadata.annotations[HANDLED_ROTATION_ANNOTATION] = newHandled;
      // Written by operators before 0.2: drop it, or deleting the issuer still deletes the keys.
      if (legacyOwners.length) {
        metadata.ownerReferences = (metadata.ownerReferences ?? []).filter((o) => !legacyOwners.includes(o));
        notes.push({ type: 'Normal', reason: EventReason.OwnerReferenceRemoved, message: `removed the owner reference to this TokenIssuer from Secret ${policy.secretName}: its keys now outlive the TokenIssuer (docs/operator.md, "Uninstall")` });
      }
      await this.api.replaceSecret(namespace, { ...secret, metadata, data });
    }
    for (const n of notes) {
      this.log('info', n.message, { namespace, issuer: name, reason: n.reason });
      await this.event(issuer, n.type, n.reason, n.message);
    }
    for (const m of removed) this.opts.metrics?.keysRemoved.inc({ purpose: m.purpose });

    // --- the public directory
    const cmData = directoryConfigMapData(files.values(), policy.issuerRequestUri, now);
    const cm = await this.api.getConfigMap(namespace, policy.configMapName);
    if (!cm) {
      await this.api.createConfigMap(namespace, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: policy.configMapName, namespace, labels: ownedLabels(name), ownerReferences: [owner] }, data: cmData });
    } else if (!sameData(cm.data, cmData)) {
      await this.api.replaceConfigMap(namespace, { ...cm, metadata: { ...cm.metadata!, labels: { ...cm.metadata?.labels, ...ownedLabels(name) } }, data: cmData } as V1ConfigMap);
    }

    // --- status
    const live = [...files.values()].map(metadataOf);
    const problems = [...parsed.problems.map((x) => `Secret entry ${x.name}: ${x.message}`), ...rewrapProblems];
    if (steps.invalidRotateRequest && getCondition(issuer.status, 'Rotating')?.reason !== Reason.InvalidRotationRequest) await this.event(issuer, 'Warning', Reason.InvalidRotationRequest, steps.invalidRotateRequest);
    const status = this.buildStatus(issuer, policy, live, removed, steps, now, { kek, problems });
    status.failedAttempts = 0;
    await this.api.patchIssuerStatus(namespace, name, nullify(status, STATUS_FIELDS));
    this.opts.metrics?.failedAttempts.set({ namespace, issuer: name }, 0);
    this.opts.metrics?.setKeys(namespace, name, live.map((m) => ({ purpose: m.purpose, keyId: m.keyId, state: keyState(m, now), notBefore: Date.parse(m.notBefore), redemptionEnd: Date.parse(m.redemptionEnd) })), now);
    return { outcome: 'ok', ...(steps.wakeAt !== undefined ? { requeueAfterMs: Math.max(0, steps.wakeAt - now) } : {}) };
  }

  /** A fresh key whose truncated id no published key uses (RFC 9578: the issuer must avoid collisions). */
  private async generate(template: KeyTemplate, existing: Iterable<SigningKeyFile>, wrapper: KeyWrapper, now: number): Promise<SigningKeyFile> {
    const taken = takenTruncatedIds([...existing].map(metadataOf), now);
    for (let i = 0; i < MAX_COLLISION_RETRIES; i++) {
      const key = await this.generateKey();
      const trunc = truncatedKeyId(tokenKeyId(key));
      if (taken.has(trunc)) {
        this.opts.metrics?.truncatedIdCollisions.inc();
        this.log('info', `generated key's truncated id ${trunc} is taken by a published key; generating another`);
        continue;
      }
      const meta: Omit<KeyMetadata, 'keyId' | 'publicKey'> = { purpose: template.purpose, notBefore: new Date(template.notBefore).toISOString(), issuanceEnd: new Date(template.issuanceEnd).toISOString(), redemptionEnd: new Date(template.redemptionEnd).toISOString() };
      if (template.epoch !== undefined) meta.epoch = template.epoch;
      return sealSigningKey(key, meta, wrapper);
    }
    throw new Error(`no key with a free truncated key id after ${MAX_COLLISION_RETRIES} attempts (${taken.size} of 256 taken)`);
  }

  private async resolveKek(issuer: IssuerObject, policy: IssuerPolicy, files: ReadonlyMap<string, SigningKeyFile>, now: number): Promise<Kek> {
    const { namespace, name } = issuer.metadata;
    if (policy.protection.type === 'local') {
      const secretName = policy.protection.secretName;
      // Key files still in their redemption window that the local KEK of this name must open.
      const wrapped = [...files.values()].filter((f) => now < Date.parse(f.redemptionEnd) && f.privateKey.type === 'envelope' && f.privateKey.kek.provider === 'local' && f.privateKey.kek.keyId === secretName);
      let s = await this.api.getSecret(namespace, secretName);
      if (!s) {
        // A new KEK would be a silent loss: every file above would stop opening behind a green status.
        if (wrapped.length) throw this.kekLost(namespace, name, secretName, 'does not exist', wrapped);
        // No owner reference on purpose: deleting the TokenIssuer must not destroy the KEK that opens existing blobs.
        try {
          s = await this.api.createSecret(namespace, { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: secretName, namespace, labels: ownedLabels(name) }, data: { [LOCAL_KEK_DATA_KEY]: Buffer.from(newLocalKekPem()).toString('base64') } });
          await this.event(issuer, 'Normal', EventReason.KeyEncryptionKeyCreated, `created local key-encryption key Secret ${secretName} (RSA-3072); back it up now (docs/operator.md, "Back up the key-encryption key"): losing it loses every signing key`);
        } catch (e) {
          if (!isApiStatus(e, 409)) throw e;
          s = await this.api.getSecret(namespace, secretName);
        }
      }
      const pemB64 = s?.data?.[LOCAL_KEK_DATA_KEY];
      if (!pemB64) throw new KekError(Reason.LocalKeyEncryptionKeyInvalid, `Secret ${secretName} has no data key ${LOCAL_KEK_DATA_KEY}; restore it from backup${wrapped.length ? '' : ', or delete the Secret to have a new one created (no key file uses it)'}`);
      let kek;
      try {
        kek = localKek(secretName, Buffer.from(pemB64, 'base64').toString('utf8'));
      } catch {
        throw new KekError(Reason.LocalKeyEncryptionKeyInvalid, `Secret ${secretName}/${LOCAL_KEK_DATA_KEY} is not an RSA private key PEM`);
      }
      const foreign = await filesNotOpeningWith(kek, wrapped);
      if (foreign.length) throw this.kekLost(namespace, name, secretName, `holds another key (${kek.fingerprint})`, foreign);
      this.opts.metrics?.keysUnopenable.set({ namespace, issuer: name }, 0);
      return { wrapper: kek, unwrapper: new CompositeUnwrapper(kek, undefined), description: `local:${secretName}` };
    }
    const { vaultUrl, keyName } = policy.protection;
    const vault = this.vault(vaultUrl, keyName);
    let wrapper: KeyWrapper;
    try {
      wrapper = await vault.current();
    } catch (e) {
      const c = classifyKeyVaultError(e, vaultUrl, keyName);
      throw new KekError(c.reason, c.message);
    }
    let local: KeyUnwrapper | undefined;
    const localSecret = await this.api.getSecret(namespace, `${name}-kek`);
    const pem = localSecret?.data?.[LOCAL_KEK_DATA_KEY];
    if (pem) local = localKek(`${name}-kek`, Buffer.from(pem, 'base64').toString('utf8'));
    return { wrapper, unwrapper: new CompositeUnwrapper(local, vault), description: wrapper.ref.keyId };
  }

  /** The local KEK that opens live key files is gone or replaced: say how to restore it, change nothing. */
  private kekLost(namespace: string, issuer: string, secretName: string, what: string, files: SigningKeyFile[]): KekError {
    this.opts.metrics?.keysUnopenable.set({ namespace, issuer }, files.length);
    const fps = [...new Set(files.map((f) => (f.privateKey.type === 'envelope' ? f.privateKey.kek.fingerprint : undefined) ?? 'no fingerprint (older file)'))];
    const keys = files.map((f) => `${f.purpose}${f.epoch ? ` ${f.epoch}` : ''} ${shortKeyId(f.keyId)}`).join(', ');
    return new KekError(
      Reason.KeyEncryptionKeyLost,
      `local key-encryption key Secret ${namespace}/${secretName} ${what}, but ${files.length} signing key(s) still in their redemption window are wrapped under ${fps.join(', ')}: ${keys}. ` +
        `Restore Secret ${secretName} from backup: kubectl apply -n ${namespace} -f ${secretName}.backup.yaml (docs/operator.md, "Restore the key-encryption key"). ` +
        'No key is generated, re-wrapped or removed until then.',
    );
  }

  private vault(vaultUrl: string, keyName: string): AzureKeyVaultKek {
    const id = `${vaultUrl}|${keyName}`;
    let v = this.vaults.get(id);
    if (!v) {
      if (!this.opts.keyVault) throw new KekError(Reason.KeyVaultError, 'this operator was started without Azure Key Vault support');
      v = this.opts.keyVault(vaultUrl, keyName);
      this.vaults.set(id, v);
    }
    return v;
  }

  private buildStatus(issuer: IssuerObject, policy: IssuerPolicy, live: KeyMetadata[], removed: KeyMetadata[], steps: Plan, now: number, extra: { kek?: Kek | undefined; problems: string[]; failure?: { reason: FailureReason; message: string } }): IssuerStatus {
    const prev = issuer.status;
    const gen = issuer.metadata.generation;
    let conditions: Condition[] = (prev?.conditions ?? []).filter((c) => c.type === 'Ready' || c.type === 'Rotating' || (c.type === 'KeyVaultReachable' && policy.protection.type === 'azureKeyVault'));
    const input: ConditionInput = { issuerName: issuer.metadata.name, policy, live, plan: steps, now, kekDescription: extra.kek?.description, problems: extra.problems, failure: extra.failure };
    for (const verdict of [readyCondition(input), rotatingCondition(input), keyVaultCondition(input)]) {
      if (verdict) conditions = setCondition(conditions, { ...verdict, ...(gen !== undefined ? { observedGeneration: gen } : {}) }, now);
    }
    const current = currentCreditKey(live, now);
    const nextRotation = nextRotationOf(input);
    const s: IssuerStatus = {
      conditions,
      keys: statusKeys(live, prev?.keys, removed, policy.historyLimit, now),
      currentEpoch: currentEpoch(now),
      failedAttempts: prev?.failedAttempts ?? 0,
    };
    if (gen !== undefined) s.observedGeneration = gen;
    if (current) s.currentCreditKey = shortKeyId(current.keyId);
    if (nextRotation) s.nextRotation = nextRotation;
    const lastRotation = live.filter((m) => m.purpose === 'credit' && Date.parse(m.notBefore) <= now).map((m) => Date.parse(m.notBefore)).sort((a, b) => b - a)[0];
    if (lastRotation !== undefined) s.lastRotationTime = isoSeconds(lastRotation);
    if (extra.kek) s.keyEncryptionKey = extra.kek.description;
    else if (prev?.keyEncryptionKey) s.keyEncryptionKey = prev.keyEncryptionKey;
    if (prev?.lastFailureTime) s.lastFailureTime = prev.lastFailureTime;
    if (prev?.lastFailureMessage) s.lastFailureMessage = prev.lastFailureMessage;
    return s;
  }

  private async failed(issuer: IssuerObject, policy: IssuerPolicy, reason: FailureReason, message: string, now: number, ctx: { files: Map<string, SigningKeyFile>; plan: Plan } | undefined): Promise<ReconcileResult> {
    const { namespace, name } = issuer.metadata;
    const attempts = (issuer.status?.failedAttempts ?? 0) + 1;
    const delay = backoffMs(attempts, this.backoff.baseMs, this.backoff.maxMs);
    this.log('warn', `reconcile failed (${reason}): ${message}`, { namespace, issuer: name, failedAttempts: attempts, retryInMs: delay });
    this.opts.metrics?.errors.inc({ reason });
    this.opts.metrics?.failedAttempts.set({ namespace, issuer: name }, attempts);
    // Report on the first failure and whenever the reason changes, not on every retry.
    const prevMsg = issuer.status?.lastFailureMessage ?? '';
    if (attempts === 1 || !prevMsg.startsWith(`${reason}:`)) await this.event(issuer, 'Warning', reason, message);
    try {
      const live = ctx ? [...ctx.files.values()].map(metadataOf) : (issuer.status?.keys ?? []).filter((k) => k.state !== 'Expired').map((k) => ({ keyId: k.keyId, purpose: k.purpose, notBefore: k.notBefore, issuanceEnd: k.issuanceEnd, redemptionEnd: k.redemptionEnd, publicKey: '', ...(k.epoch ? { epoch: k.epoch } : {}) }));
      const steps = ctx?.plan ?? { generate: [], retire: [], remove: [], rewrap: [], withdraw: [], revoke: [] };
      const status = this.buildStatus(issuer, policy, live, [], steps, now, { problems: [], failure: { reason, message } });
      status.failedAttempts = attempts;
      status.lastFailureTime = isoSeconds(now);
      status.lastFailureMessage = `${reason}: ${message}`;
      status.nextRetryTime = isoSeconds(now + delay);
      await this.api.patchIssuerStatus(namespace, name, nullify(status, STATUS_FIELDS));
    } catch (e) {
      this.log('error', `could not write the failure status: ${e instanceof Error ? e.message : String(e)}`, { namespace, issuer: name });
    }
    return { outcome: 'failed', requeueAfterMs: delay };
  }

  private async invalidSpec(issuer: IssuerObject, e: SpecError, now: number): Promise<ReconcileResult> {
    const { namespace, name } = issuer.metadata;
    const message = `${e.problems.join('; ')}. Fix the spec (kubectl edit tokenissuer ${name}); nothing is changed until then.`;
    if (getCondition(issuer.status, 'Ready')?.message !== message) await this.event(issuer, 'Warning', Reason.InvalidSpec, message);
    const gen = issuer.metadata.generation;
    const conditions = setCondition(issuer.status?.conditions, { type: 'Ready', status: 'False', reason: Reason.InvalidSpec, message, ...(gen !== undefined ? { observedGeneration: gen } : {}) }, now);
    await this.api.patchIssuerStatus(namespace, name, { conditions, ...(gen !== undefined ? { observedGeneration: gen } : {}) });
    this.opts.metrics?.errors.inc({ reason: Reason.InvalidSpec });
    return { outcome: 'invalid' };
  }

  private async event(issuer: IssuerObject, type: 'Normal' | 'Warning', reason: EventReason | Reason, message: string): Promise<void> {
    const { namespace, name } = issuer.metadata;
    const t = new Date();
    const ev: CoreV1Event = {
      metadata: { generateName: `${name}.`, namespace },
      involvedObject: { apiVersion: API_VERSION, kind: KIND, name, namespace, ...(issuer.metadata.uid ? { uid: issuer.metadata.uid } : {}) },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: MANAGED_BY },
      reportingComponent: `${MANAGED_BY}`,
      reportingInstance: this.opts.identity ?? MANAGED_BY,
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    };
    try {
      await this.api.createEvent(namespace, ev);
    } catch (e) {
      this.log('warn', `could not record event ${reason}: ${e instanceof Error ? e.message : String(e)}`, { namespace, issuer: name });
    }
  }
}

const STATUS_FIELDS = ['observedGeneration', 'conditions', 'keys', 'currentCreditKey', 'currentEpoch', 'nextRotation', 'lastRotationTime', 'keyEncryptionKey', 'failedAttempts', 'lastFailureTime', 'lastFailureMessage', 'nextRetryTime'] as const;

/** Merge patch: absent fields become null so the server removes them. */
function nullify(status: IssuerStatus, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = (status as Record<string, unknown>)[f] ?? null;
  return out;
}

function ownedLabels(issuer: string): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY, [ISSUER_LABEL]: issuer };
}

function ownerReference(issuer: IssuerObject): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: issuer.metadata.name, uid: issuer.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

function describeKek(file: SigningKeyFile): string {
  return file.privateKey.type === 'plain' ? 'plain' : describeKekRef(file.privateKey.kek);
}

function describeGenerated(file: SigningKeyFile, template: KeyTemplate): string {
  const what = `${template.purpose}${template.epoch ? ` ${template.epoch}` : ''} key ${shortKeyId(file.keyId)} (truncated id ${parseInt(file.keyId.slice(-2), 16)})`;
  const windows = `signs ${file.notBefore} – ${file.issuanceEnd}, verifies until ${file.redemptionEnd}`;
  switch (template.reason) {
    case 'bootstrap':
      return `${what} generated to sign at once (no key could sign): ${windows}`;
    case 'forced':
      return `forced rotation: ${what} published, ${windows}`;
    case 'emergency':
      return `emergency rotation: ${what} signs at once, ${windows}`;
    case 'epoch':
      return `${what} published for epoch ${template.epoch}: ${windows}`;
    default:
      return `${what} published ahead of rotation: ${windows}`;
  }
}


/** Files whose data key does not unwrap with `kek` (by fingerprint; files without one are tried). */
async function filesNotOpeningWith(kek: LocalKeyEncryptionKey, files: readonly SigningKeyFile[]): Promise<SigningKeyFile[]> {
  const out: SigningKeyFile[] = [];
  for (const f of files) {
    if (f.privateKey.type !== 'envelope') continue;
    const fp = f.privateKey.kek.fingerprint;
    if (fp !== undefined) {
      if (fp !== kek.fingerprint) out.push(f);
      continue;
    }
    try {
      (await kek.unwrapKey(f.privateKey.kek, fromBase64Url(f.privateKey.wrappedDataKey))).fill(0);
    } catch {
      out.push(f);
    }
  }
  return out;
}
