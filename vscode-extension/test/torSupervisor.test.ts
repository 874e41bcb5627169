import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseBootstrapLine, torrcFor, TorSupervisor } from '../src/core/torSupervisor.js';
import { creditsFor } from '../src/core/redemptionApi.js';

describe('Tor supervisor', () => {
  it('reads bootstrap progress from tor log lines', () => {
    assert.deepEqual(parseBootstrapLine('Nov 25 14:00:00.000 [notice] Bootstrapped 45% (loading_descriptors): Loading relay descriptors'), {
      progress: 45,
      tag: 'loading_descriptors',
      summary: 'Loading relay descriptors',
    });
    assert.equal(parseBootstrapLine('Nov 25 [notice] Bootstrapped 100% (done): Done')?.progress, 100);
    assert.equal(parseBootstrapLine('[notice] Opening Socks listener on 127.0.0.1:9050'), undefined);
  });

  it('writes a torrc with an isolated loopback SOCKS port, its own data dir and an owning process', () => {
    const rc = torrcFor({ dataDir: '/d', socksPort: 1234, ownerPid: 42, extra: ['UseBridges 1'] });
    assert.match(rc, /^SocksPort 127\.0\.0\.1:1234 IsolateSOCKSAuth$/m);
    assert.match(rc, /^DataDirectory \/d$/m);
    assert.match(rc, /^__OwningControllerProcess 42$/m);
    assert.match(rc, /^UseBridges 1$/m);
  });

  it('reports a failure when the tor binary cannot run', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-sup-'));
    try {
      const sup = new TorSupervisor({ torPath: path.join(dir, 'no-such-tor'), dataDir: path.join(dir, 'data') });
      const states: string[] = [];
      sup.on('state', (s: { kind: string }) => states.push(s.kind));
      await assert.rejects(sup.start(), /cannot run/);
      assert.deepEqual(states, ['starting', 'failed']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pricing', () => {
  it('charges price × ceil(bytes / bytes per credit), at least the price', () => {
    assert.equal(creditsFor({ priceCredits: 1, bytesPerCredit: 30_000 }, 10), 1);
    assert.equal(creditsFor({ priceCredits: 2, bytesPerCredit: 30_000 }, 30_001), 4);
    assert.equal(creditsFor({ priceCredits: 3, bytesPerCredit: 1024 }, 0), 3);
  });
});
