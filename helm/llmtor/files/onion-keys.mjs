// Per-pod backend onion keys for the Onionbalance front (docs/deploy.md, "One onion address").
// Each redemption pod (a StatefulSet, so its name is stable) derives its own ed25519 key from a
// shared seed and its pod name; the Onionbalance pod derives the same public keys to list the
// backends. No pod needs API access, and a re-created pod comes back with the same backend address.
//   node onion-keys.mjs backend <seed file> <pod name> <dir> <frontend hostname file>
//       writes <dir>/hs_ed25519_secret_key (tor's format) and <dir>/ob_config (MasterOnionAddress)
//   node onion-keys.mjs config <seed file> <statefulset> <replicas> <frontend key file> <out file>
//       writes Onionbalance's config listing the backends' addresses
//   node onion-keys.mjs frontend <dir>
//       makes a fresh public (frontend) key: <dir>/hs_ed25519_secret_key and <dir>/hostname
// Node's crypto only (the images carry no other tool for this).
import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The 32-byte ed25519 seed of one backend: HMAC-SHA256(seed, label ‖ pod name). */
export function backendSeed(seed, podName) {
  return createHmac('sha256', seed).update(`llmtor onion backend v1\0${podName}`).digest();
}

/** Tor's hs_ed25519_secret_key file: a 32-byte header and the expanded key (clamped SHA-512 of the seed). */
export function torSecretKeyFile(edSeed) {
  const h = createHash('sha512').update(edSeed).digest();
  h[0] &= 248;
  h[31] &= 127;
  h[31] |= 64;
  const header = Buffer.alloc(32);
  header.write('== ed25519v1-secret: type0 ==');
  return Buffer.concat([header, h]);
}

function publicKey(edSeed) {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, edSeed]), format: 'der', type: 'pkcs8' });
  return createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
}

function base32(buf) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** v3 onion address (rend-spec-v3 §6): base32(PUBKEY ‖ CHECKSUM[:2] ‖ VERSION) + ".onion". */
export function onionAddress(pub) {
  const version = Buffer.from([3]);
  const checksum = createHash('sha3-256').update(Buffer.concat([Buffer.from('.onion checksum'), pub, version])).digest().subarray(0, 2);
  return `${base32(Buffer.concat([pub, checksum, version]))}.onion`;
}

export function backendAddress(seed, podName) {
  return onionAddress(publicKey(backendSeed(seed, podName)));
}

function writeAtomic(file, data, mode) {
  writeFileSync(`${file}.tmp`, data, { mode });
  chmodSync(`${file}.tmp`, mode);
  renameSync(`${file}.tmp`, file);
}

function main(argv) {
  const [cmd, seedFile, ...rest] = argv;
  if (cmd === 'frontend') {
    const dir = seedFile;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const edSeed = randomBytes(32);
    writeAtomic(join(dir, 'hs_ed25519_secret_key'), torSecretKeyFile(edSeed), 0o600);
    writeAtomic(join(dir, 'hostname'), `${onionAddress(publicKey(edSeed))}\n`, 0o600);
    console.log(readFileSync(join(dir, 'hostname'), 'utf8').trim());
    return;
  }
  if (!seedFile) throw new Error('usage: onion-keys.mjs backend|config <seed file> …');
  const seed = readFileSync(seedFile);
  if (seed.length < 32) throw new Error(`the backend seed (${seedFile}) must hold at least 32 bytes`);
  if (cmd === 'backend') {
    const [podName, dir, frontendHostnameFile] = rest;
    const frontend = readFileSync(frontendHostnameFile, 'utf8').trim();
    if (!/^[a-z2-7]{56}\.onion$/.test(frontend)) throw new Error(`${frontendHostnameFile} does not hold a v3 onion address`);
    // tor refuses a HiddenServiceDir not owned by its user or not mode 700; this runs as tor's uid.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    writeAtomic(join(dir, 'hs_ed25519_secret_key'), torSecretKeyFile(backendSeed(seed, podName)), 0o600);
    // HiddenServiceOnionbalanceInstance: this backend also answers introductions made for the front.
    writeAtomic(join(dir, 'ob_config'), `MasterOnionAddress ${frontend}\n`, 0o600);
    console.log(`backend onion of ${podName}: ${backendAddress(seed, podName)}`);
  } else if (cmd === 'config') {
    const [sts, replicas, keyFile, out] = rest;
    const n = Number(replicas);
    if (!Number.isInteger(n) || n < 1) throw new Error(`replicas must be a positive integer, not ${replicas}`);
    const instances = Array.from({ length: n }, (_, i) => backendAddress(seed, `${sts}-${i}`));
    // YAML (JSON is YAML): the format onionbalance-config writes.
    const config = { services: [{ key: keyFile, instances: instances.map((address) => ({ address, name: address.slice(0, 16) })) }] };
    writeAtomic(out, `${JSON.stringify(config, null, 2)}\n`, 0o644);
    for (const [i, a] of instances.entries()) console.log(`backend ${sts}-${i}: ${a}`);
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

// Run as a program. A ConfigMap volume holds the file behind ..data symlinks, and Node names the
// module by its real path: compare real paths.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
