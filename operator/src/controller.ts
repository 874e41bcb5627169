/**
 * Watches TokenIssuers (and the Secrets / ConfigMaps the operator owns) and
 * runs the reconciler: on every change, at the next instant the plan changes
 * (next rotation, next epoch, end of a window), after a failure's back-off, and
 * on a periodic resync (which also notices a jump of an injected clock).
 * The timing (dedupe, one reconcile at a time per issuer, back-off) is the
 * WorkQueue's; this file only turns watch events into keys.
 */
import { CustomObjectsApi, CoreV1Api, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { isApiStatus, type IssuerObject } from './kubeApi.js';
import type { LogFn, Reconciler } from './reconciler.js';
import { GROUP, ISSUER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, VERSION } from './spec.js';
import { WorkQueue, type WorkOutcome } from './workQueue.js';

export interface ControllerOptions {
  kc: KubeConfig;
  namespace: string;
  reconciler: Reconciler;
  /** Reconcile every issuer at least this often (default 60 s). */
  resyncMs?: number;
  log?: LogFn;
}

export class Controller {
  private readonly queue: WorkQueue<string>;
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly seen = new Map<string, string>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly resyncMs: number;
  private readonly log: LogFn;
  private issuerInformer: (Informer<IssuerObject> & { list(namespace?: string): IssuerObject[] }) | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.resyncMs = opts.resyncMs ?? 60_000;
    this.log = opts.log ?? (() => undefined);
    this.queue = new WorkQueue<string>({
      maxDelayMs: this.resyncMs,
      work: (key) => this.reconcile(key),
      onError: (key, e) => this.log('error', `reconcile of ${key} threw: ${e instanceof Error ? e.message : String(e)}`),
    });
  }

  async start(): Promise<void> {
    const { kc, namespace } = this.opts;
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const issuers = makeInformer<IssuerObject>(
      kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`,
      () => custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }) as never,
    ) as unknown as Informer<IssuerObject> & { list(namespace?: string): IssuerObject[] };
    this.issuerInformer = issuers;
    const onIssuer = (o: IssuerObject) => {
      // Status writes (ours) change neither generation nor annotations: no reconcile loop.
      const key = `${o.metadata.namespace}/${o.metadata.name}`;
      const sig = `${o.metadata.generation}|${JSON.stringify(o.metadata.annotations ?? {})}|${o.metadata.deletionTimestamp ?? ''}`;
      if (this.seen.get(key) === sig) return;
      this.seen.set(key, sig);
      this.enqueue(key, 0, { bypassBackoff: true });
    };
    issuers.on('add', onIssuer);
    issuers.on('update', onIssuer);
    issuers.on('delete', (o) => {
      const key = `${o.metadata.namespace}/${o.metadata.name}`;
      this.seen.delete(key);
      this.queue.forget(key);
    });
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    const secrets = makeInformer<V1Secret>(kc, `/api/v1/namespaces/${namespace}/secrets`, () => core.listNamespacedSecret({ namespace, labelSelector: selector }), selector);
    const configMaps = makeInformer<V1ConfigMap>(kc, `/api/v1/namespaces/${namespace}/configmaps`, () => core.listNamespacedConfigMap({ namespace, labelSelector: selector }), selector);
    const onOwned = (o: KubernetesObject) => {
      const issuer = o.metadata?.labels?.[ISSUER_LABEL];
      if (issuer) this.enqueue(`${o.metadata?.namespace}/${issuer}`, 0);
    };
    for (const inf of [secrets, configMaps] as Informer<KubernetesObject>[]) {
      inf.on('update', onOwned);
      inf.on('delete', onOwned);
    }
    // A Secret that appears (a key-encryption key restored from backup) is a change a failing issuer waits for: no back-off.
    secrets.on('add', (o: KubernetesObject) => {
      const issuer = o.metadata?.labels?.[ISSUER_LABEL];
      if (issuer) this.enqueue(`${o.metadata?.namespace}/${issuer}`, 0, { bypassBackoff: true });
    });
    const all = [issuers, secrets, configMaps] as unknown as Informer<KubernetesObject>[];
    for (const inf of all) {
      inf.on('error', (err) => {
        if (this.stopped) return;
        // A missing CRD (404) is said once a minute by the CRD probe, not with every retry.
        if (!isApiStatus(err, 404)) this.log('warn', `watch failed, restarting in 1 s: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
        setTimeout(() => {
          if (!this.stopped) inf.start().catch(() => undefined);
        }, 1000).unref();
      });
      this.informers.push(inf);
    }
    // A watch that cannot start (no CRD yet) is retried by its error handler; the controller still starts.
    await Promise.all(all.map((i) => i.start().catch(() => undefined)));
    this.resyncTimer = setInterval(() => {
      for (const o of issuers.list(namespace)) this.enqueue(`${o.metadata.namespace}/${o.metadata.name}`, 0);
    }, this.resyncMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await Promise.all(this.informers.map((i) => i.stop().catch(() => undefined)));
    await this.queue.shutDown();
  }

  /** Issuers known to the watch (for tests and /readyz). */
  issuers(): IssuerObject[] {
    return this.issuerInformer?.list(this.opts.namespace) ?? [];
  }

  enqueue(key: string, delayMs: number, opts: { bypassBackoff?: boolean } = {}): void {
    if (this.stopped) return;
    this.queue.add(key, delayMs, { liftHold: opts.bypassBackoff ?? false });
  }

  private async reconcile(key: string): Promise<WorkOutcome> {
    const [namespace, name] = key.split('/') as [string, string];
    const r = await this.opts.reconciler.reconcile(namespace, name);
    // Back-off holds against resyncs and owned-object events too; only a change of the issuer lifts it.
    return { requeueAfterMs: r.outcome === 'gone' ? undefined : r.requeueAfterMs, holdMs: r.outcome === 'failed' ? (r.requeueAfterMs ?? 0) : undefined };
  }
}
