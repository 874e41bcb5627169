/**
 * The objects the proxy reads: the Secret with one key file per key (data key
 * `<keyId hex>.json`, mounted as the proxy's key directory) and the ConfigMap
 * with the public directory and key metadata. Pure conversions; no API calls.
 */
import { Keyring, keyEntry, parseSigningKeyFile, type KeyMetadata, type SigningKeyFile } from '@llmtor/protocol';
import { DIRECTORY_DATA_KEY, KEYS_DATA_KEY } from './spec.js';

const FILE_RE = /^([0-9a-f]{64})\.json$/;

export interface ParsedKeySecret {
  files: Map<string, SigningKeyFile>;
  /** Data entries that are not valid key files: kept untouched, reported in the status. */
  problems: { name: string; message: string }[];
}

export function parseKeySecret(data: Record<string, string> | undefined): ParsedKeySecret {
  const files = new Map<string, SigningKeyFile>();
  const problems: ParsedKeySecret['problems'] = [];
  for (const [name, b64] of Object.entries(data ?? {})) {
    const m = FILE_RE.exec(name);
    if (!m) {
      problems.push({ name, message: 'not a key file name (<64 hex>.json)' });
      continue;
    }
    try {
      const file = parseSigningKeyFile(Buffer.from(b64, 'base64').toString('utf8'));
      if (file.keyId !== m[1]) throw new Error(`file name does not match keyId ${file.keyId.slice(0, 12)}…`);
      files.set(file.keyId, file);
    } catch (e) {
      problems.push({ name, message: e instanceof Error ? e.message : String(e) });
    }
  }
  return { files, problems };
}

export function keySecretData(files: Iterable<SigningKeyFile>): Record<string, string> {
  const data: Record<string, string> = {};
  for (const f of [...files].sort((a, b) => a.keyId.localeCompare(b.keyId))) data[`${f.keyId}.json`] = Buffer.from(JSON.stringify(f, null, 2) + '\n').toString('base64');
  return data;
}

/** The public metadata of a key file (no private part). */
export function metadataOf(f: SigningKeyFile): KeyMetadata {
  const m: KeyMetadata = { keyId: f.keyId, purpose: f.purpose, notBefore: f.notBefore, issuanceEnd: f.issuanceEnd, redemptionEnd: f.redemptionEnd, publicKey: f.publicKey };
  if (f.epoch !== undefined) m.epoch = f.epoch;
  return m;
}

/** ConfigMap data: the RFC 9578 issuer directory and the key metadata, both public. */
export function directoryConfigMapData(files: Iterable<SigningKeyFile>, issuerRequestUri: string, now: number): Record<string, string> {
  const metas = [...files].map(metadataOf).sort((a, b) => Date.parse(b.notBefore) - Date.parse(a.notBefore) || a.keyId.localeCompare(b.keyId));
  const ring = new Keyring(metas.map(keyEntry));
  return {
    [DIRECTORY_DATA_KEY]: JSON.stringify(ring.directory(issuerRequestUri, now), null, 2) + '\n',
    [KEYS_DATA_KEY]: JSON.stringify(metas.filter((m) => now < Date.parse(m.redemptionEnd)), null, 2) + '\n',
  };
}

export function sameData(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  const ak = Object.keys(a ?? {}).sort();
  const bk = Object.keys(b).sort();
  return ak.length === bk.length && ak.every((k, i) => k === bk[i] && a![k] === b[k]);
}
