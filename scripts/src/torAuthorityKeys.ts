/** Directory-authority keys for the private Tor network (tor-gencert), cached outside the repository. */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { checkTool, randomCredential, runTool } from './tornetSupport.js';

export interface AuthorityKeys {
  nickname: string;
  /** v3 identity (fingerprint of the authority identity key, from the certificate). */
  v3ident: string;
  /** Relay identity fingerprint. */
  fingerprint: string;
  /** Directory holding authority_certificate, authority_signing_key and relay keys/. */
  dir: string;
}

const KEY_CACHE_VERSION = 'v2';
const AUTHORITY_NICKNAMES = ['auth0', 'auth1', 'auth2'] as const;

async function readAuthoritySet(dir: string): Promise<AuthorityKeys[] | undefined> {
  const out: AuthorityKeys[] = [];
  for (const nickname of AUTHORITY_NICKNAMES) {
    const d = path.join(dir, nickname);
    try {
      const cert = await readFile(path.join(d, 'authority_certificate'), 'utf8');
      const v3ident = /^fingerprint ([0-9A-F]{40})$/m.exec(cert)?.[1];
      const expires = /^dir-key-expires (\S+ \S+)$/m.exec(cert)?.[1];
      const fpLine = await readFile(path.join(d, 'fingerprint'), 'utf8');
      const fingerprint = /([0-9A-F]{40})/.exec(fpLine)?.[1];
      await stat(path.join(d, 'authority_signing_key'));
      await stat(path.join(d, 'keys', 'secret_id_key'));
      if (!v3ident || !fingerprint || !expires) return undefined;
      // Regenerate when the certificate has less than 30 days left.
      if (Date.parse(expires.replace(' ', 'T') + 'Z') - Date.now() < 30 * 86_400_000) return undefined;
      out.push({ nickname, v3ident, fingerprint, dir: d });
    } catch {
      return undefined;
    }
  }
  return out;
}

async function generateAuthoritySet(dir: string, torPath: string, gencert: string): Promise<void> {
  checkTool(gencert);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const emptyTorrc = path.join(dir, 'empty-torrc');
  await writeFile(emptyTorrc, '');
  for (const nickname of AUTHORITY_NICKNAMES) {
    const d = path.join(dir, nickname);
    await mkdir(path.join(d, 'keys'), { recursive: true, mode: 0o700 });
    // No `-a address:port`: a certificate's dir-address overrides the DirAuthority line
    // ("Updating address for directory authority … based on certificate"); without it the
    // DirAuthority lines alone say where the authorities are, so one cached set serves
    // networks on any ports.
    runTool(gencert, ['--create-identity-key', '--passphrase-fd', '0', '-m', '12'], {
      cwd: d,
      input: '\n',
    });
    const relayDir = path.join(d, 'relay');
    await mkdir(relayDir, { recursive: true, mode: 0o700 });
    runTool(torPath, [
      '--defaults-torrc', emptyTorrc, '-f', emptyTorrc,
      '--list-fingerprint', '--DataDirectory', relayDir, '--ORPort', '1',
      '--Nickname', nickname, '--Log', 'err stderr', '--GeoIPFile', '', '--GeoIPv6File', '',
    ]);
    for (const f of await readdir(path.join(relayDir, 'keys'))) {
      await copyFile(path.join(relayDir, 'keys', f), path.join(d, 'keys', f));
    }
    await copyFile(path.join(relayDir, 'fingerprint'), path.join(d, 'fingerprint'));
    await rm(relayDir, { recursive: true, force: true });
  }
  await rm(emptyTorrc, { force: true });
}

/** Authority keys from the cache, generating (and caching) them when missing or old. */
export async function authorityKeys(
  cacheRoot: string | false,
  scratch: string,
  torPath: string,
  gencert: string,
): Promise<{ keys: AuthorityKeys[]; cached: boolean }> {
  if (cacheRoot) {
    const setDir = path.join(cacheRoot, KEY_CACHE_VERSION);
    const existing = await readAuthoritySet(setDir);
    if (existing) return { keys: existing, cached: true };
    try {
      await mkdir(cacheRoot, { recursive: true, mode: 0o700 });
      const tmp = await mkdtemp(path.join(cacheRoot, '.tmp-'));
      await generateAuthoritySet(tmp, torPath, gencert);
      const old = existsSync(setDir) ? `${setDir}.old-${randomCredential()}` : undefined;
      if (old) await rename(setDir, old).catch(() => undefined);
      try {
        await rename(tmp, setDir);
      } catch {
        // Someone else cached a set meanwhile; use theirs.
        await rm(tmp, { recursive: true, force: true });
      }
      if (old) await rm(old, { recursive: true, force: true });
      const fresh = await readAuthoritySet(setDir);
      if (fresh) return { keys: fresh, cached: false };
    } catch {
      // Cache not writable: fall through to uncached keys in the scratch directory.
    }
  }
  const dir = path.join(scratch, 'authority-keys');
  await generateAuthoritySet(dir, torPath, gencert);
  const keys = await readAuthoritySet(dir);
  if (!keys) throw new Error('tor network: could not generate authority keys');
  return { keys, cached: false };
}


/** Copy an authority's keys into the data dir of the tor that will run it. */
export async function installAuthorityKeys(key: AuthorityKeys, dataDir: string): Promise<void> {
  await mkdir(path.join(dataDir, 'keys'), { recursive: true, mode: 0o700 });
  for (const f of await readdir(path.join(key.dir, 'keys'))) {
    await copyFile(path.join(key.dir, 'keys', f), path.join(dataDir, 'keys', f));
  }
  for (const f of ['authority_certificate', 'authority_signing_key']) {
    await copyFile(path.join(key.dir, f), path.join(dataDir, 'keys', f));
  }
}
