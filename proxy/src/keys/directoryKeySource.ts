/**
 * Loads the operator's key directory: one `<keyId>.json` key file per key
 * (format in protocol/src/keyFile.ts). Dotfiles and Kubernetes' `..data`
 * symlink machinery are skipped. A bad file is reported and skipped; the other
 * keys still load. Private keys are opened (and unwrapped, for envelope files)
 * only when `openPrivateKeys` is set: redemption-only pods need public keys only.
 */
import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { keyEntry, openSigningKeyFile, parseSigningKeyFile, type KeyEntry, type KeyUnwrapper } from '@llmtor/protocol';
import type { KeySource, LoadedKeys } from './keySource.js';

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
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
    const entries: KeyEntry[] = [];
    const privateKeys = new Map<string, KeyObject>();
    const problems: LoadedKeys['problems'] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      try {
        if (!(await stat(path)).isFile()) continue;
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
