/**
 * Wires one operator replica: leader election → (while leading) controller →
 * reconciler, plus the metrics endpoint. Used by main.ts and, in-process, by
 * tests (injected clock, short lease durations, Key Vault stand-in).
 */
import type { Server } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { systemClock, type Clock } from './clock.js';
import { Controller } from './controller.js';
import { CrdProbe } from './crdProbe.js';
import type { AzureKeyVaultKek } from './kek.js';
import { KubeClusterApi, type ClusterApi } from './kubeApi.js';
import { LeaderElector, kubeLeaseApi } from './leaderElection.js';
import { OperatorMetrics, serveMetrics } from './metrics.js';
import { Reconciler, type LogFn } from './reconciler.js';

export interface OperatorOptions {
  kc: KubeConfig;
  namespace: string;
  identity: string;
  clock?: Clock;
  log?: LogFn;
  keyVault?: (vaultUrl: string, keyName: string) => AzureKeyVaultKek;
  /** Wrap the cluster adapter (tests: fault injection). */
  api?: (api: ClusterApi) => ClusterApi;
  generateKey?: () => Promise<KeyObject>;
  backoff?: { baseMs: number; maxMs: number };
  resyncMs?: number;
  lease?: { name?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  /** Port for /metrics, /healthz, /readyz; undefined = no HTTP server. */
  metricsPort?: number;
  metricsHost?: string;
  metrics?: OperatorMetrics;
  /** How often to check that the CRD is installed (default 10 s) and how often to say it is not (default 60 s). */
  crdProbe?: { intervalMs?: number; logEveryMs?: number };
}

export interface RunningOperator {
  readonly identity: string;
  readonly metrics: OperatorMetrics;
  readonly reconciler: Reconciler;
  readonly elector: LeaderElector;
  readonly metricsServer: Server | undefined;
  readonly crd: CrdProbe;
  isLeader(): boolean;
  controller(): Controller | undefined;
  /** Clean stop (releases the Lease); `{ release: false }` behaves like a crash for the others. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

export async function startOperator(o: OperatorOptions): Promise<RunningOperator> {
  const log = o.log ?? (() => undefined);
  const metrics = o.metrics ?? new OperatorMetrics();
  const base = new KubeClusterApi(o.kc);
  const api = o.api ? o.api(base) : base;
  const reconciler = new Reconciler({
    api,
    clock: o.clock ?? systemClock,
    log,
    metrics,
    identity: o.identity,
    ...(o.keyVault ? { keyVault: o.keyVault } : {}),
    ...(o.generateKey ? { generateKey: o.generateKey } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
  });
  let controller: Controller | undefined;
  let transition: Promise<void> = Promise.resolve();
  const elector = new LeaderElector({
    api: kubeLeaseApi(o.kc),
    namespace: o.namespace,
    name: o.lease?.name ?? 'llmtor-operator',
    identity: o.identity,
    ...(o.lease?.leaseDurationMs !== undefined ? { leaseDurationMs: o.lease.leaseDurationMs } : {}),
    ...(o.lease?.renewDeadlineMs !== undefined ? { renewDeadlineMs: o.lease.renewDeadlineMs } : {}),
    ...(o.lease?.retryPeriodMs !== undefined ? { retryPeriodMs: o.lease.retryPeriodMs } : {}),
    log,
    onStartedLeading: () => {
      metrics.isLeader.set(1);
      transition = transition.then(async () => {
        const c = new Controller({ kc: o.kc, namespace: o.namespace, reconciler, log, ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}) });
        controller = c;
        try {
          await c.start();
        } catch (e) {
          log('error', `controller did not start: ${e instanceof Error ? e.message : String(e)}`);
        }
      });
      return transition;
    },
    onStoppedLeading: () => {
      metrics.isLeader.set(0);
      transition = transition.then(async () => {
        const c = controller;
        controller = undefined;
        await c?.stop();
      });
      return transition;
    },
  });
  const crd = new CrdProbe({ kc: o.kc, namespace: o.namespace, log, ...o.crdProbe });
  crd.start();
  // Not ready without the CRD: nothing can be reconciled, and a rollout should not look healthy.
  const metricsServer = o.metricsPort !== undefined ? await serveMetrics(metrics, o.metricsPort, o.metricsHost, () => crd.isInstalled) : undefined;
  elector.start();
  return {
    identity: o.identity,
    metrics,
    reconciler,
    elector,
    metricsServer,
    crd,
    isLeader: () => elector.isLeader,
    controller: () => controller,
    async stop(opts) {
      crd.stop();
      await elector.stop(opts);
      await transition;
      await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
    },
  };
}
