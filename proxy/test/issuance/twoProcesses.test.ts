/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startRedis, freePort, type RedisHandle } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { adminGrant, createAccount, getAccount } from '../../src/dev/issuanceClient.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { RedisIssuanceStore } from '../../src/store/redisIssuanceStore.js';
import { ADMIN_TOKEN, hammer, PEPPER, sharedTestKeys } from '../support/issuanceHarness.js';
import { localKek, tempDir, writeKeyFile } from '../support/keyFiles.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`proxy exited (${child.exitCode}): ${stderr()}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`proxy at ${url} not ready: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('issuance: two proxy processes on one Redis', function () {
  this.timeout(120_000);
  let redis: RedisHandle;
  let dir: string;
  const procs: ChildProcess[] = [];
  const urls: string[] = [];

  before(async () => {
    redis = await startRedis();
    dir = tempDir();
    const keys = await sharedTestKeys();
    // Envelope-encrypted key files with a local key-encryption key, as the operator writes them.
    const { kek, pemFile, name } = localKek(dir);
    for (const e of keys.entries) await writeKeyFile(dir, e, keys.privateKeys.get(e.meta.keyId)!, kek);
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      let err = '';
      const child = spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env.PATH ?? '',
          LLMTOR_ROLES: 'issuance',
          LLMTOR_HOST: '127.0.0.1',
          PORT: String(port),
          REDIS_URL: redis.url,
          LLMTOR_KEY_DIR: dir,
          LLMTOR_KEK_FILE: pemFile,
          LLMTOR_KEK_NAME: name,
          LLMTOR_ACCOUNT_PEPPER: PEPPER,
          ADMIN_TOKEN,
          LLMTOR_LOG_LEVEL: 'warn',
          LLMTOR_ISSUANCE_PER_MINUTE: '1000000',
          LLMTOR_SIGNER_THREADS: '1',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      procs.push(child);
      const url = `http://127.0.0.1:${port}`;
      await waitReady(url, child, () => err);
      urls.push(url);
    }
  });

  after(async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
          }),
      ),
    );
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1000 concurrent requests split over two processes with credit for 500 sign exactly 500 tokens, balance 0, journal consistent', async () => {
    const key = await createAccount(urls[0]!);
    await adminGrant(urls[1]!, ADMIN_TOKEN, key, 500);
    const keys = await sharedTestKeys();
    const results = await hammer(keys.entries, urls, key, 1000);
    assert.equal(results.filter((r) => r.status === 200).length, 500);
    assert.ok(results.filter((r) => r.status === 200).every((r) => r.valid));
    assert.ok(results.every((r) => r.status === 200 || r.status === 402));
    const view = await getAccount(urls[1]!, key);
    assert.equal(view.balance, 0);
    const conn = new Redis(redis.url);
    try {
      const store = new RedisIssuanceStore(conn);
      const journal = await store.journal(view.account_ref);
      assert.deepEqual(checkJournal(journal, await store.balance(view.account_ref)).problems, []);
      assert.equal(journal.filter((e) => e.type === 'issue').length, 500);
    } finally {
      conn.disconnect();
    }
  });

  it('a process stopped with SIGTERM exits cleanly', async () => {
    const p = procs[1]!;
    const code = await new Promise<number | null>((resolve) => {
      p.once('exit', (c) => resolve(c));
      p.kill('SIGTERM');
    });
    assert.equal(code, 0);
  });
});
