/**
 * Is the TokenIssuer CRD installed? Without it every watch and list answers 404: the
 * operator would log a long error each second and look healthy. The probe lists at
 * most one TokenIssuer (what the operator's Role allows anyway) every `intervalMs`,
 * says once a minute in one line what to do, and drives /readyz.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { isApiStatus } from './kubeApi.js';
import type { LogFn } from './reconciler.js';
import { GROUP, PLURAL, VERSION } from './spec.js';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const CRD_MISSING_MESSAGE = `CRD ${CRD_NAME} is not installed: kubectl apply -f crds/`;

export interface CrdProbeOptions {
  kc: KubeConfig;
  namespace: string;
  log?: LogFn;
  intervalMs?: number;
  /** The missing-CRD message is logged at most this often (default one minute). */
  logEveryMs?: number;
}

export class CrdProbe {
  private installed: boolean | undefined;
  private lastLogged = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private readonly api: CustomObjectsApi;

  constructor(private readonly opts: CrdProbeOptions) {
    this.api = opts.kc.makeApiClient(CustomObjectsApi);
  }

  /** True once a probe found the CRD (unknown before the first probe counts as not installed). */
  get isInstalled(): boolean {
    return this.installed === true;
  }

  async check(): Promise<boolean | undefined> {
    const log = this.opts.log ?? (() => undefined);
    try {
      await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.opts.namespace, plural: PLURAL, limit: 1 });
      if (this.installed === false) log('info', `CRD ${CRD_NAME} is installed`);
      this.installed = true;
    } catch (e) {
      if (!isApiStatus(e, 404)) return this.installed; // API server hiccup: keep the last answer
      this.installed = false;
      const now = Date.now();
      if (now - this.lastLogged >= (this.opts.logEveryMs ?? 60_000)) {
        this.lastLogged = now;
        log('error', CRD_MISSING_MESSAGE, { namespace: this.opts.namespace });
      }
    }
    return this.installed;
  }

  start(): void {
    const tick = () => {
      void this.check().finally(() => {
        this.timer = setTimeout(tick, this.opts.intervalMs ?? 10_000);
        this.timer.unref();
      });
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
