/**
 * The extension ships as one esbuild bundle (esbuild.mjs). NativeTokenClient runs its
 * batches in a worker made from the source text of its core functions; this checks that
 * still works after esbuild has bundled the protocol package the way the extension does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const ENTRY = `
import { generateKeyPairSync } from 'node:crypto';
import { NativeTokenClient, challengeDigest, defaultChallenge, pssSpkiFromPublicKey, verifyToken } from '@llmtor/protocol';
import { BlindSigner } from '@llmtor/protocol/server';
(async () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signer = new BlindSigner(privateKey);
  const client = await NativeTokenClient.forKey(pssSpkiFromPublicKey(privateKey));
  const digest = challengeDigest(defaultChallenge('bundle.test'));
  const made = await client.createRequests(digest, 12);
  const tokens = await client.finalizeMany(made.map((m) => m.pending), made.map((m) => ({ blindSig: signer.sign(m.request.blindedMsg) })));
  for (const t of tokens) verifyToken(t, () => signer.publicKey, digest);
  console.log('tokens ' + tokens.length);
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('native blinding inside the extension bundle', function () {
  this.timeout(60_000);
  it('blinds and finalizes a batch in its worker after esbuild bundling (CommonJS, node20)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmtor-bundle-'));
    try {
      const outfile = join(dir, 'bundle.cjs');
      await build({
        stdin: { contents: ENTRY, resolveDir: join(__dirname, '..', '..'), loader: 'ts' },
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        outfile,
        external: ['vscode'],
        mainFields: ['module', 'main'],
        logLevel: 'error',
      });
      const { stdout } = await promisify(execFile)(process.execPath, [outfile], { timeout: 50_000 });
      assert.equal(stdout.trim(), 'tokens 12');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
