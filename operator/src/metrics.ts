/** Prometheus metrics of the operator, served on an HTTP port (/metrics, /healthz, /readyz). */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'llmtor_operator_reconciles_total', help: 'Reconciles of TokenIssuers by result (ok, failed, conflict, invalid, gone).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly errors = new Counter({ name: 'llmtor_operator_reconcile_errors_total', help: 'Failed reconciles by reason.', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly duration = new Histogram({ name: 'llmtor_operator_reconcile_duration_seconds', help: 'Time of one reconcile.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly keysGenerated = new Counter({ name: 'llmtor_operator_keys_generated_total', help: 'Signing keys generated, by purpose and reason (bootstrap, scheduled, forced, epoch).', labelNames: ['purpose', 'reason'] as const, registers: [this.registry] });
  readonly keysRemoved = new Counter({ name: 'llmtor_operator_keys_removed_total', help: 'Signing keys removed after their redemption window.', labelNames: ['purpose'] as const, registers: [this.registry] });
  readonly keysRewrapped = new Counter({ name: 'llmtor_operator_keys_rewrapped_total', help: 'Key files re-wrapped under a new key-encryption key version.', registers: [this.registry] });
  readonly truncatedIdCollisions = new Counter({ name: 'llmtor_operator_truncated_key_id_collisions_total', help: 'Generated keys discarded because their truncated key id was taken by a published key.', registers: [this.registry] });
  readonly keyAge = new Gauge({ name: 'llmtor_operator_key_age_seconds', help: 'Seconds since a published key\'s not-before (negative while it waits to take over).', labelNames: ['namespace', 'issuer', 'purpose', 'key_id', 'state'] as const, registers: [this.registry] });
  readonly keyRedemptionRemaining = new Gauge({ name: 'llmtor_operator_key_redemption_remaining_seconds', help: 'Seconds until a published key stops verifying tokens.', labelNames: ['namespace', 'issuer', 'purpose', 'key_id'] as const, registers: [this.registry] });
  readonly failedAttempts = new Gauge({ name: 'llmtor_operator_failed_attempts', help: 'Consecutive failed reconciles of a TokenIssuer (back-off grows with it).', labelNames: ['namespace', 'issuer'] as const, registers: [this.registry] });
  readonly keysUnopenable = new Gauge({ name: 'llmtor_operator_keys_unopenable', help: 'Signing keys still in their redemption window that the configured key-encryption key cannot open (non-zero: restore the KEK from backup).', labelNames: ['namespace', 'issuer'] as const, registers: [this.registry] });
  readonly isLeader = new Gauge({ name: 'llmtor_operator_is_leader', help: '1 while this replica holds the leader Lease.', registers: [this.registry] });
  private readonly keyLabels = new Map<string, { purpose: string; key_id: string; state: string }[]>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Replaces the key gauges of one issuer. */
  setKeys(namespace: string, issuer: string, keys: { purpose: string; keyId: string; state: string; notBefore: number; redemptionEnd: number }[], now: number): void {
    const id = `${namespace}/${issuer}`;
    for (const l of this.keyLabels.get(id) ?? []) {
      this.keyAge.remove({ namespace, issuer, ...l });
      this.keyRedemptionRemaining.remove({ namespace, issuer, purpose: l.purpose, key_id: l.key_id });
    }
    const labels = keys.map((k) => ({ purpose: k.purpose, key_id: k.keyId.slice(0, 12), state: k.state }));
    keys.forEach((k, i) => {
      const l = labels[i]!;
      this.keyAge.set({ namespace, issuer, ...l }, (now - k.notBefore) / 1000);
      this.keyRedemptionRemaining.set({ namespace, issuer, purpose: l.purpose, key_id: l.key_id }, (k.redemptionEnd - now) / 1000);
    });
    this.keyLabels.set(id, labels);
  }
}

/** Serves /metrics, /healthz and /readyz (ready = `ready()`); returns the server once listening. */
export async function serveMetrics(metrics: OperatorMetrics, port: number, host = '0.0.0.0', ready: () => boolean = () => true): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        })
        .catch(() => {
          res.writeHead(500);
          res.end();
        });
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else if (req.url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
