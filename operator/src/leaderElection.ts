/**
 * Leader election on a coordination.k8s.io/v1 Lease (client-node ships no
 * helper). Same protocol as client-go's leaderelection package, so replicas of
 * other implementations could share the Lease:
 *
 * - A candidate takes the Lease when it does not exist, is released (empty
 *   holder), or has not changed for `leaseDuration` *as observed locally* (the
 *   local time of the last change is used, not the renewTime written by the
 *   other replica, so clock skew between nodes does not matter).
 * - Every write is a replace conditional on the Lease's resourceVersion: of two
 *   candidates racing, one gets 409 and stays a follower.
 * - The leader renews every `retryPeriod`; if it has not renewed for
 *   `renewDeadline` (< leaseDuration) it stops leading before anybody else may
 *   take over, so two replicas never act at once.
 * - On a clean stop the leader releases the Lease (empty holder) so a
 *   successor takes over at once instead of after `leaseDuration`.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isApiStatus } from './kubeApi.js';
import type { LogFn } from './reconciler.js';

export interface LeaseApi {
  read(namespace: string, name: string): Promise<V1Lease | undefined>;
  create(namespace: string, lease: V1Lease): Promise<V1Lease>;
  replace(namespace: string, lease: V1Lease): Promise<V1Lease>;
}

export function kubeLeaseApi(kc: KubeConfig): LeaseApi {
  const api = kc.makeApiClient(CoordinationV1Api);
  return {
    async read(namespace, name) {
      try {
        return await api.readNamespacedLease({ namespace, name });
      } catch (e) {
        if (isApiStatus(e, 404)) return undefined;
        throw e;
      }
    },
    create: (namespace, body) => api.createNamespacedLease({ namespace, body }),
    replace: (namespace, body) => api.replaceNamespacedLease({ namespace, name: body.metadata!.name!, body }),
  };
}

export interface LeaderElectionOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  log?: LogFn;
  /** Local monotonic-ish time source (tests need not change it). */
  now?: () => number;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private observedKey = '';
  private observedAt = 0;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  private readonly now: () => number;
  private readonly log: LogFn;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseDurationMs)) throw new RangeError('renewDeadline must be shorter than leaseDuration');
    if (!(this.retryPeriodMs < this.renewDeadlineMs)) throw new RangeError('retryPeriod must be shorter than renewDeadline');
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.log = opts.log ?? (() => undefined);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader stops leading and (unless `release: false`, i.e. a simulated crash) releases the Lease. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      await this.opts.onStoppedLeading();
      if (opts.release !== false) await this.release();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      // jitter keeps candidates from hitting the API server in lock-step
      this.timer = setTimeout(resolve, ms * (1 + Math.random() * 0.2));
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (e) {
        this.log('warn', `lease ${this.opts.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (this.stopped) break;
      if (ok) {
        this.lastRenew = this.now();
        if (!this.leading) {
          this.leading = true;
          this.log('info', `became leader (lease ${this.opts.namespace}/${this.opts.name})`, { identity: this.opts.identity });
          await this.opts.onStartedLeading();
        }
      } else if (this.leading && this.now() - this.lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        this.log('warn', `lost leadership: lease not renewed for ${this.renewDeadlineMs} ms`, { identity: this.opts.identity });
        await this.opts.onStoppedLeading();
      }
      await this.sleep(this.retryPeriodMs);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.opts;
    const wall = new V1MicroTime(Date.now());
    const durationSeconds = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));
    const lease = await api.read(namespace, name);
    if (!lease) {
      try {
        await api.create(namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: wall, renewTime: wall, leaseTransitions: 0 },
        });
        return true;
      } catch (e) {
        if (isApiStatus(e, 409)) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ? new Date(spec.renewTime).getTime() : ''}|${lease.metadata?.resourceVersion ?? ''}`;
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = this.now();
    }
    const observedDuration = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== '' && holder !== identity && this.now() < this.observedAt + observedDuration) return false;
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: wall,
        acquireTime: holder === identity && spec.acquireTime ? new V1MicroTime(new Date(spec.acquireTime).getTime()) : wall,
        leaseTransitions: holder === identity ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      const written = await api.replace(namespace, next);
      this.observedKey = `${identity}|${wall.getTime()}|${written.metadata?.resourceVersion ?? ''}`;
      this.observedAt = this.now();
      return true;
    } catch (e) {
      if (isApiStatus(e, 409)) return false;
      throw e;
    }
  }

  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.opts;
    try {
      const lease = await api.read(namespace, name);
      if (!lease || lease.spec?.holderIdentity !== identity) return;
      await api.replace(namespace, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(Date.now()) } });
    } catch (e) {
      this.log('warn', `could not release lease ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
