/**
 * Loads the operator's key directory: one `<keyId>.json` key file per key
 * (format in protocol/src/keyFile.ts). Dotfiles and Kubernetes' `..data`
 * symlink machinery are skipped. A bad file is reported and skipped; the other
 * keys still load. Private keys are opened (and unwrapped, for envelope files)
 * only when `openPrivateKeys` is set: redemption-only pods need public keys only.
 * A redemption-only directory may instead be the operator's public directory
 * ConfigMap: `keys.json` (an array of key metadata, no private part) is read as
 * the keys and `directory.json` is skipped, so those pods never see the key files.
 */
import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { keyEntry, openSigningKeyFile, parseKeyMetadata, parseSigningKeyFile, type KeyEntry, type KeyUnwrapper } from '@llmtor/protocol';
import type { KeySource, LoadedKeys } from './keySource.js';

/** Data keys of the operator's public directory ConfigMap (operator/src/spec.ts). */
const PUBLIC_KEYS_FILE = 'keys.json';
const DIRECTORY_FILE = 'directory.json';

export class DirectoryKeySource implements KeySource {
  readonly description: string;
  readonly watchPath: string;
  constructor(
    private readonly dir: string,
    private readonly opts: { openPrivateKeys: boolean; unwrapper?: KeyUnwrapper },
  ) {
    this.description = `key directory ${dir}`;
    this.watchPath = dir;
  }

  async load(): Promise<LoadedKeys> {
    // directory.json (same ConfigMap as keys.json) is derived from keys.json.
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.') && n !== DIRECTORY_FILE).sort();
    const entries: KeyEntry[] = [];
    const privateKeys = new Map<string, KeyObject>();
    const problems: LoadedKeys['problems'] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      try {
        if (!(await stat(path)).isFile()) continue;
        if (name === PUBLIC_KEYS_FILE) {
          if (this.opts.openPrivateKeys) throw new Error('public key metadata only (the directory ConfigMap): issuance needs the key files (the signing-keys Secret)');
          const list: unknown = JSON.parse(await readFile(path, 'utf8'));
          if (!Array.isArray(list)) throw new Error('must be a JSON array of key metadata');
          for (const m of list) entries.push(keyEntry(parseKeyMetadata(m)));
          continue;
        }
        const file = parseSigningKeyFile(await readFile(path, 'utf8'));
        const entry = keyEntry(file);
        if (this.opts.openPrivateKeys) {
          try {
            privateKeys.set(file.keyId, await openSigningKeyFile(file, this.opts.unwrapper));
          } catch (e) {
            const key = { keyId: file.keyId, purpose: file.purpose, issuanceEnd: file.issuanceEnd, ...(file.epoch ? { epoch: file.epoch } : {}) };
            problems.push({ file: name, message: e instanceof Error ? e.message : String(e), key });
            continue;
          }
        }
        entries.push(entry);
      } catch (e) {
        problems.push({ file: name, message: e instanceof Error ? e.message : String(e) });
      }
    }
    return { entries, privateKeys, problems };
  }
}
