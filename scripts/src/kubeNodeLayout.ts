/**
 * The kube node's fixed layout (scripts/src/kubeNode.ts): names and address ranges of its
 * network namespace, bridge, pod and service networks, the run directory, the cgroup root
 * and the images scripts/kube/build-node.sh makes. One node per machine, hence fixed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeBinDir } from './kubeTestEnv.js';

/** The network namespace holding the whole node. */
export const NODE_NETNS = 'llmtor-node';
/** The pod bridge inside {@link NODE_NETNS}. */
export const NODE_BRIDGE = 'llmtor0';
/** Pod network: the bridge holds .1; host-local hands out .10-.199; .200-.250 are for `KubeNode.attachNetns`. */
export const POD_CIDR = '10.213.0.0/24';
export const NODE_IP = '10.213.0.1';
/** ClusterIPs; the `kubernetes` Service is 10.213.1.1. */
export const SERVICE_CIDR = '10.213.1.0/24';
/** CoreDNS listens on the bridge address; kubelet's clusterDNS. */
export const CLUSTER_DNS = NODE_IP;
export const NODE_NAME = 'llmtor-node';
export const POD_RANGE = { start: '10.213.0.10', end: '10.213.0.199' };
/** Addresses `KubeNode.attachNetns` hands out: 10.213.0.<ATTACH_FIRST..ATTACH_LAST>. */
export const ATTACH_FIRST = 200;
export const ATTACH_LAST = 250;
export const API_PORT = 6443; // inside the namespace
export const ADMIN_USER = 'llmtor-admin';
/** cgroup (in every hierarchy) holding the kubelet's pods: `cgroupRoot` in its config. */
export const CGROUP_ROOT = 'llmtor-node';
/** Host-wide sysctls the kubelet sets at start; saved by `up` and restored by `down`. */
export const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

export function kubeNodeDir(): string {
  return process.env.LLMTOR_NODE_DIR || '/var/lib/llmtor-node';
}

/** OCI archives made by scripts/kube/build-node.sh: the sandbox's pause image and a static busybox for tests. */
export function imagesDir(kubeVersion: string): string {
  return join(kubeBinDir(kubeVersion), '..', 'images');
}

/** Path and name of an image built by scripts/kube/build-node.sh ('busybox': httpd, wget, nslookup, sh). */
export function kubeNodeImage(which: 'pause' | 'busybox', kubeVersion = process.env.LLMTOR_KUBE_VERSION ?? 'v1.33.13'): { archive: string; name: string } {
  const d = imagesDir(kubeVersion);
  return { archive: join(d, `${which}.tar`), name: readFileSync(join(d, `${which}.name`), 'utf8').trim() };
}
