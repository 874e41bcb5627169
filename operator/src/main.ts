#!/usr/bin/env node
/**
 * The operator process. Configuration by environment:
 *   POD_NAMESPACE / LLMTOR_OPERATOR_NAMESPACE  namespace to watch (default: the ServiceAccount's)
 *   POD_NAME                                 identity in the leader Lease (default: hostname-pid)
 *   METRICS_PORT (9090), METRICS_HOST (0.0.0.0)
 *   LEASE_NAME (llmtor-operator), LEASE_DURATION_MS (15000), RENEW_DEADLINE_MS (10000), RETRY_PERIOD_MS (2000)
 *   RESYNC_MS (60000), BACKOFF_BASE_MS (5000), BACKOFF_MAX_MS (300000)
 *   KUBECONFIG (outside a cluster); in a cluster the ServiceAccount token is used.
 *   Azure: DefaultAzureCredential (workload identity: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { DefaultAzureCredential } from '@azure/identity';
import { KubeConfig } from '@kubernetes/client-node';
import { AzureKeyVaultKek, type TokenCredential } from './kek.js';
import { startOperator } from './operator.js';
import type { LogFn } from './reconciler.js';

const log: LogFn = (level, msg, fields) => {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
};

function intEnv(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  if (!/^\d+$/.test(v)) {
    log('error', `${name} must be a whole number of milliseconds / a port, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return Number(v);
}

function namespace(): string {
  const ns = process.env.LLMTOR_OPERATOR_NAMESPACE || process.env.POD_NAMESPACE;
  if (ns) return ns;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'default';
  }
}

async function main(): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  let credential: TokenCredential | undefined;
  const identity = process.env.POD_NAME || `${hostname()}-${process.pid}`;
  const op = await startOperator({
    kc,
    namespace: namespace(),
    identity,
    log,
    keyVault: (vaultUrl, keyName) => {
      credential ??= new DefaultAzureCredential();
      return new AzureKeyVaultKek({ vaultUrl, keyName, credential });
    },
    resyncMs: intEnv('RESYNC_MS', 60_000),
    backoff: { baseMs: intEnv('BACKOFF_BASE_MS', 5_000), maxMs: intEnv('BACKOFF_MAX_MS', 300_000) },
    lease: {
      name: process.env.LEASE_NAME || 'llmtor-operator',
      leaseDurationMs: intEnv('LEASE_DURATION_MS', 15_000),
      renewDeadlineMs: intEnv('RENEW_DEADLINE_MS', 10_000),
      retryPeriodMs: intEnv('RETRY_PERIOD_MS', 2_000),
    },
    metricsPort: intEnv('METRICS_PORT', 9090),
    metricsHost: process.env.METRICS_HOST || '0.0.0.0',
  });
  log('info', 'operator started', { identity, namespace: namespace() });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', `${signal}: releasing the lease and stopping`);
    op.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  log('error', `operator failed to start: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
