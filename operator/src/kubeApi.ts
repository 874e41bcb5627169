/**
 * The thin Kubernetes adapter: exactly the calls the reconciler makes, so tests
 * can wrap it (fault injection, counting writes) without a mock of the API.
 */
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig, type V1ConfigMap, type V1ObjectMeta, type V1Secret } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from './spec.js';
import type { IssuerStatus } from './status.js';

export interface IssuerObject {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec?: unknown;
  status?: IssuerStatus;
}

export interface ClusterApi {
  getIssuer(namespace: string, name: string): Promise<IssuerObject | undefined>;
  /** Merge-patches annotations, only if the object still has `resourceVersion` (409 otherwise). */
  patchIssuerAnnotations(namespace: string, name: string, annotations: Record<string, string | null>, resourceVersion: string): Promise<void>;
  patchIssuerStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void>;
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  createSecret(namespace: string, body: V1Secret): Promise<V1Secret>;
  /** Replace; `body.metadata.resourceVersion` makes it conditional (409 if the Secret changed meanwhile). */
  replaceSecret(namespace: string, body: V1Secret): Promise<V1Secret>;
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  createConfigMap(namespace: string, body: V1ConfigMap): Promise<V1ConfigMap>;
  replaceConfigMap(namespace: string, body: V1ConfigMap): Promise<V1ConfigMap>;
  createEvent(namespace: string, event: CoreV1Event): Promise<void>;
}

export function isApiStatus(e: unknown, code: number): boolean {
  return e instanceof ApiException && e.code === code;
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (isApiStatus(e, 404)) return undefined;
    throw e;
  }
}

export class KubeClusterApi implements ClusterApi {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  constructor(kc: KubeConfig, private readonly fieldManager = 'llmtor-operator') {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  async getIssuer(namespace: string, name: string): Promise<IssuerObject | undefined> {
    return (await orUndefined(this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }))) as IssuerObject | undefined;
  }

  async patchIssuerAnnotations(namespace: string, name: string, annotations: Record<string, string | null>, resourceVersion: string): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { metadata: { annotations, resourceVersion } }, fieldManager: this.fieldManager },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async patchIssuerStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { status }, fieldManager: this.fieldManager },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    return orUndefined(this.core.readNamespacedSecret({ namespace, name }));
  }
  createSecret(namespace: string, body: V1Secret): Promise<V1Secret> {
    return this.core.createNamespacedSecret({ namespace, body, fieldManager: this.fieldManager });
  }
  replaceSecret(namespace: string, body: V1Secret): Promise<V1Secret> {
    return this.core.replaceNamespacedSecret({ namespace, name: body.metadata!.name!, body, fieldManager: this.fieldManager });
  }
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    return orUndefined(this.core.readNamespacedConfigMap({ namespace, name }));
  }
  createConfigMap(namespace: string, body: V1ConfigMap): Promise<V1ConfigMap> {
    return this.core.createNamespacedConfigMap({ namespace, body, fieldManager: this.fieldManager });
  }
  replaceConfigMap(namespace: string, body: V1ConfigMap): Promise<V1ConfigMap> {
    return this.core.replaceNamespacedConfigMap({ namespace, name: body.metadata!.name!, body, fieldManager: this.fieldManager });
  }
  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    await this.core.createNamespacedEvent({ namespace, body: event });
  }
}
