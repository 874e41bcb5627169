/**
 * One real kube-apiserver (+ etcd) for all operator tests in this process
 * (scripts/src/kubeTestEnv.ts), the CRD applied with the real kubectl, and a
 * fresh namespace per test so tests do not see each other's objects.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { startKubeTestEnv, type KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { GROUP, PLURAL, VERSION, parseKeySecret, type IssuerObject } from '../../src/index.js';

let shared: Promise<KubeTestEnv> | undefined;
let crdApplied: Promise<void> | undefined;

export const CRD_FILE = fileURLToPath(new URL('../../../../crds/tokenissuers.llmtor.dev.yaml', import.meta.url));

/** The shared API server, with the TokenIssuer CRD applied and established. */
export async function kubeEnv(): Promise<KubeTestEnv> {
  shared ??= startKubeTestEnv();
  const env = await shared;
  crdApplied ??= (async () => {
    const r = await env.kubectl(['apply', '-f', CRD_FILE]);
    if (r.code !== 0) throw new Error(`kubectl apply of the CRD failed: ${r.stderr}`);
    const w = await env.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/tokenissuers.llmtor.dev']);
    if (w.code !== 0) throw new Error(`CRD not established: ${w.stderr}`);
  })();
  await crdApplied;
  return env;
}

/** Stops the shared API server (root after-all hook). */
export async function stopKubeEnv(): Promise<void> {
  if (shared) await (await shared).stop();
  shared = undefined;
  crdApplied = undefined;
}

export function kubeConfig(env: KubeTestEnv): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions(env.kubeConfigOptions);
  return kc;
}

export async function newNamespace(env: KubeTestEnv, prefix: string): Promise<string> {
  const ns = `${prefix}-${randomBytes(3).toString('hex')}`;
  const r = await env.kubectl(['create', 'namespace', ns]);
  if (r.code !== 0) throw new Error(`kubectl create namespace: ${r.stderr}`);
  return ns;
}

export async function applyIssuer(env: KubeTestEnv, namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
  const doc = JSON.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: 'TokenIssuer', metadata: { name, namespace }, spec });
  const r = await env.kubectl(['apply', '-f', '-'], { input: doc });
  if (r.code !== 0) throw new Error(`kubectl apply TokenIssuer: ${r.stderr}`);
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last instanceof Error ? last.message : String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class Cluster {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  constructor(readonly kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }
  async issuer(namespace: string, name: string): Promise<IssuerObject> {
    return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name })) as IssuerObject;
  }
  async secret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch {
      return undefined;
    }
  }
  async keyFiles(namespace: string, name: string) {
    const s = await this.secret(namespace, name);
    return parseKeySecret(s?.data).files;
  }
  async configMapData(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    try {
      return (await this.core.readNamespacedConfigMap({ namespace, name })).data;
    } catch {
      return undefined;
    }
  }
  async events(namespace: string): Promise<{ reason: string; message: string; type: string }[]> {
    const l = await this.core.listNamespacedEvent({ namespace });
    return l.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '' }));
  }
}
