/**
 * Watches TokenIssuers (and the Secrets / ConfigMaps the operator owns) and
 * runs the reconciler: on every change, at the next instant the plan changes
 * (next rotation, next epoch, end of a window), after a failure's back-off, and
 * on a periodic resync (which also notices a jump of an injected clock).
 * One reconcile at a time per issuer.
 */
import { CustomObjectsApi, CoreV1Api, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { isApiStatus, type IssuerObject } from './kubeApi.js';
import type { LogFn, Reconciler } from './reconciler.js';
import { GROUP, ISSUER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, VERSION } from './spec.js';

export interface ControllerOptions {
  kc: KubeConfig;
  namespace: string;
  reconciler: Reconciler;
  /** Reconcile every issuer at least this often (default 60 s). */
  resyncMs?: number;
  log?: LogFn;
}

interface Item {
  /** After a failure: no reconcile before this (wall clock), except for a change of the issuer itself. */
  backoffUntil?: number;
  timer?: NodeJS.Timeout;
  dueAt?: number;
  running?: Promise<void>;
  again?: boolean;
}

export class Controller {
  private readonly items = new Map<string, Item>();
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
      this.forget(key);
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
    for (const it of this.items.values()) if (it.timer) clearTimeout(it.timer);
    await Promise.all([...this.items.values()].map((i) => i.running));
    this.items.clear();
  }

  /** Issuers known to the watch (for tests and /readyz). */
  issuers(): IssuerObject[] {
    return this.issuerInformer?.list(this.opts.namespace) ?? [];
  }

  private forget(key: string): void {
    const it = this.items.get(key);
    if (it?.timer) clearTimeout(it.timer);
    if (it && !it.running) this.items.delete(key);
  }

  enqueue(key: string, delayMs: number, opts: { bypassBackoff?: boolean } = {}): void {
    if (this.stopped) return;
    const it = this.items.get(key) ?? {};
    this.items.set(key, it);
    if (opts.bypassBackoff) it.backoffUntil = undefined;
    const held = it.backoffUntil !== undefined ? it.backoffUntil - Date.now() : 0;
    const delay = Math.max(0, held, Math.min(delayMs, this.resyncMs));
    const due = Date.now() + delay;
    if (it.running) {
      if (delay === 0) it.again = true;
      else if (it.dueAt === undefined || due < it.dueAt) this.arm(key, it, delay, due);
      return;
    }
    if (it.dueAt !== undefined && it.dueAt <= due) return;
    this.arm(key, it, delay, due);
  }

  private arm(key: string, it: Item, delay: number, due: number): void {
    if (it.timer) clearTimeout(it.timer);
    it.dueAt = due;
    it.timer = setTimeout(() => {
      it.timer = undefined;
      it.dueAt = undefined;
      this.run(key, it);
    }, delay);
  }

  private run(key: string, it: Item): void {
    if (this.stopped) return;
    if (it.running) {
      it.again = true;
      return;
    }
    const [namespace, name] = key.split('/') as [string, string];
    it.running = (async () => {
      let next: number | undefined;
      try {
        const r = await this.opts.reconciler.reconcile(namespace, name);
        next = r.requeueAfterMs;
        if (r.outcome === 'gone') next = undefined;
        // Back-off holds against resyncs and owned-object events too; only a change of the issuer lifts it.
        it.backoffUntil = r.outcome === 'failed' ? Date.now() + (r.requeueAfterMs ?? 0) : undefined;
      } catch (e) {
        this.log('error', `reconcile of ${key} threw: ${e instanceof Error ? e.message : String(e)}`);
        next = 5_000;
        it.backoffUntil = Date.now() + next;
      }
      it.running = undefined;
      if (this.stopped) return;
      if (it.again) {
        it.again = false;
        this.enqueue(key, 0);
      } else if (next !== undefined) this.enqueue(key, next);
    })();
  }
}
