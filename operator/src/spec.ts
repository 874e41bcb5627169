/**
 * The TokenIssuer custom resource (crds/tokenissuers.llmtor.dev.yaml): names,
 * and the spec validated with zod at the edge. The CRD's OpenAPI schema and CEL
 * rules reject bad objects at the API server already; this repeats the checks
 * so an object stored before a CRD upgrade (or applied with validation off)
 * still cannot make the operator misbehave, and fills the same defaults.
 */
import { z } from 'zod';
import { isDuration, parseDuration } from './duration.js';

export const GROUP = 'llmtor.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'TokenIssuer';
export const PLURAL = 'tokenissuers';

/** `kubectl annotate tokenissuer main llmtor.dev/rotate=now --overwrite` (or an RFC 3339 time to schedule one, or `compromised`). */
export const ROTATE_ANNOTATION = `${GROUP}/rotate`;
/** With `rotate=compromised`: "true" also stops the old keys verifying at once (their tokens are rejected). */
export const REVOKE_REDEMPTION_ANNOTATION = `${GROUP}/revoke-redemption`;
/** On the key Secret: the last rotation request (RFC 3339) already carried out, written with the new key. */
export const HANDLED_ROTATION_ANNOTATION = `${GROUP}/last-rotation-request`;
/** On the signing-keys Secret, which has no owner reference: why it stays after the TokenIssuer is deleted. */
export const KEEP_ANNOTATION = `${GROUP}/keep`;
export const KEEP_NOTE = 'kept when the TokenIssuer is deleted: tokens signed under these keys stay redeemable until each key\'s redemptionEnd; delete it yourself after the last one (docs/operator.md, Uninstall)';
/** Labels on every object the operator owns. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'llmtor-operator';
export const ISSUER_LABEL = `${GROUP}/issuer`;
/** Data key of the PEM in a local key-encryption-key Secret. */
export const LOCAL_KEK_DATA_KEY = 'kek.pem';
/** Data keys of the directory ConfigMap. */
export const DIRECTORY_DATA_KEY = 'directory.json';
export const KEYS_DATA_KEY = 'keys.json';

const dnsName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS-1123 name (lowercase letters, digits, -, .)');
const duration = z.string().refine(isDuration, 'must be a duration such as 720h, 1h30m or 90s (units h, m, s, ms)');

const keyProtectionSchema = z
  .object({
    azureKeyVault: z
      .object({
        vaultUrl: z.string().url().regex(/^https:\/\//, 'must be an https:// URL'),
        keyName: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a Key Vault key name (1-127 of a-z A-Z 0-9 -)'),
      })
      .strict()
      .optional(),
    local: z.object({ secretName: dnsName.optional() }).strict().optional(),
  })
  .strict()
  .refine((k) => !(k.azureKeyVault && k.local), 'set either azureKeyVault or local, not both');

export const issuerSpecSchema = z
  .object({
    /** issuer-request-uri announced in the directory. */
    issuerRequestUri: z.string().min(1).default('/token-request'),
    keyProtection: keyProtectionSchema.default({}),
    credit: z
      .object({
        rotationPeriod: duration.default('720h'),
        issuanceWindow: duration.default('744h'),
        redemptionGrace: duration.default('720h'),
        publishAhead: duration.default('24h'),
      })
      .strict()
      .default({}),
    permanent: z
      .object({
        policy: z.enum(['Rolling', 'Disabled']).default('Rolling'),
        lifetime: duration.default('87600h'),
        redemptionGrace: duration.default('8760h'),
      })
      .strict()
      .default({}),
    transient: z
      .object({
        epoch: z.enum(['CalendarMonthUTC', 'Disabled']).default('CalendarMonthUTC'),
        grace: duration.default('168h'),
      })
      .strict()
      .default({}),
    secretName: dnsName.optional(),
    configMapName: dnsName.optional(),
    historyLimit: z.number().int().min(0).max(100).default(5),
    paused: z.boolean().default(false),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Runs even when a field failed above (zod marks the result dirty, not aborted): compare only valid durations.
    const ms = (v: string) => (isDuration(v) ? parseDuration(v) : Number.NaN);
    const p = ms(s.credit.rotationPeriod);
    if (ms(s.credit.issuanceWindow) < p) ctx.addIssue({ code: 'custom', path: ['credit', 'issuanceWindow'], message: 'must be at least credit.rotationPeriod (else no key signs between two rotations)' });
    if (ms(s.credit.publishAhead) >= p) ctx.addIssue({ code: 'custom', path: ['credit', 'publishAhead'], message: 'must be shorter than credit.rotationPeriod' });
    if (p < 60_000) ctx.addIssue({ code: 'custom', path: ['credit', 'rotationPeriod'], message: 'must be at least 1m' });
    const ahead = ms(s.credit.publishAhead);
    if (ms(s.credit.issuanceWindow) >= p && ahead < p && p >= 60_000 && ahead + ms(s.credit.issuanceWindow) + ms(s.credit.redemptionGrace) > 4 * p) {
      ctx.addIssue({ code: 'custom', path: ['credit', 'redemptionGrace'], message: 'publishAhead + issuanceWindow + redemptionGrace must be at most 4 x rotationPeriod (else more than 5 credit keys are published at once)' });
    }
    const life = ms(s.permanent.lifetime);
    if (s.permanent.policy === 'Rolling' && life <= ahead) {
      ctx.addIssue({ code: 'custom', path: ['permanent', 'lifetime'], message: 'must be longer than credit.publishAhead' });
    } else if (s.permanent.policy === 'Rolling' && ahead + ms(s.permanent.redemptionGrace) > 3 * life) {
      ctx.addIssue({ code: 'custom', path: ['permanent', 'redemptionGrace'], message: 'credit.publishAhead + permanent.redemptionGrace must be at most 3 x permanent.lifetime (else more than 5 permanent keys are published at once)' });
    }
    if (ms(s.transient.grace) > 2016 * 3_600_000) ctx.addIssue({ code: 'custom', path: ['transient', 'grace'], message: 'must be at most 2016h (else more than 5 transient keys are published at once)' });
  });

export type IssuerSpecInput = z.input<typeof issuerSpecSchema>;
export type IssuerSpecParsed = z.infer<typeof issuerSpecSchema>;

/** The spec with durations in milliseconds and names resolved: what the pure core works with. */
export interface IssuerPolicy {
  issuerRequestUri: string;
  protection: { type: 'azureKeyVault'; vaultUrl: string; keyName: string } | { type: 'local'; secretName: string };
  credit: { rotationPeriod: number; issuanceWindow: number; redemptionGrace: number; publishAhead: number };
  permanent: { policy: 'Rolling' | 'Disabled'; lifetime: number; redemptionGrace: number };
  transient: { epoch: 'CalendarMonthUTC' | 'Disabled'; grace: number };
  secretName: string;
  configMapName: string;
  historyLimit: number;
  paused: boolean;
}

export class SpecError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid spec: ${problems.join('; ')}`);
    this.name = 'SpecError';
  }
}

/** Validates a TokenIssuer's spec; throws SpecError naming every bad field. */
export function issuerPolicy(issuerName: string, spec: unknown): IssuerPolicy {
  const r = issuerSpecSchema.safeParse(spec ?? {});
  if (!r.success) throw new SpecError(r.error.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`));
  const s = r.data;
  const kv = s.keyProtection.azureKeyVault;
  return {
    issuerRequestUri: s.issuerRequestUri,
    protection: kv ? { type: 'azureKeyVault', vaultUrl: kv.vaultUrl.replace(/\/+$/, ''), keyName: kv.keyName } : { type: 'local', secretName: s.keyProtection.local?.secretName ?? `${issuerName}-kek` },
    credit: {
      rotationPeriod: parseDuration(s.credit.rotationPeriod),
      issuanceWindow: parseDuration(s.credit.issuanceWindow),
      redemptionGrace: parseDuration(s.credit.redemptionGrace),
      publishAhead: parseDuration(s.credit.publishAhead),
    },
    permanent: { policy: s.permanent.policy, lifetime: parseDuration(s.permanent.lifetime), redemptionGrace: parseDuration(s.permanent.redemptionGrace) },
    transient: { epoch: s.transient.epoch, grace: parseDuration(s.transient.grace) },
    secretName: s.secretName ?? `${issuerName}-signing-keys`,
    configMapName: s.configMapName ?? `${issuerName}-directory`,
    historyLimit: s.historyLimit,
    paused: s.paused,
  };
}
