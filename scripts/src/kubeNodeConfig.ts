/**
 * The kube node's credentials and component configurations (scripts/src/kubeNode.ts): a CA
 * made at start and the leaf certificates signed with it, kubeconfigs, CoreDNS's RBAC, and
 * the containerd, kubelet, kube-proxy and CoreDNS configuration files.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CGROUP_ROOT, CLUSTER_DNS, NODE_IP, NODE_NAME, POD_CIDR } from './kubeNodeLayout.js';
import { must } from './kubeNodeHost.js';

export async function makePki(dir: string): Promise<void> {
  const o = (args: string[]) => must('openssl', args, { timeoutMs: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = join(dir, 'ca');
  await o(['req', '-x509', '-new', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '30', '-subj', '/CN=llmtor-node-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = async (name: string, subj: string, ext: string[]) => {
    const p = join(dir, name);
    await o(['req', '-new', ...ec, '-keyout', `${p}.key`, '-out', `${p}.csr`, '-subj', subj]);
    await writeFile(`${p}.ext`, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ...ext, ''].join('\n'));
    await o(['x509', '-req', '-in', `${p}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${p}.crt`, '-days', '30', '-extfile', `${p}.ext`]);
  };
  await leaf('apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    `subjectAltName=IP:127.0.0.1,IP:${NODE_IP},IP:10.213.1.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
  ]);
  // The API server's identity towards the kubelet (logs, exec, port-forward).
  await leaf('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', ['extendedKeyUsage=clientAuth']);
  await rm(`${ca}.key`, { force: true }); // nothing else is signed with it
  // Service-account signing key (kube-apiserver signs, kube-controller-manager's token controller too).
  await o(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'sa.key')]);
  await o(['ec', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub')]);
}

export function kubeconfig(server: string, caFile: string, user: string, token: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'llmtor-node', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'llmtor-node', user, namespace: 'default' } }],
    'current-context': user,
  });
}


export const COREDNS_RBAC = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "llmtor:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "llmtor:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "llmtor:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "llmtor:coredns"}
`;

export function containerdConfig(dir: string, sock: string, pauseImage: string): string {
  const root = join(dir, 'containerd', 'root');
  const st = join(dir, 'containerd', 'state');
  return `version = 2
root = "${root}"
state = "${st}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${sock}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  enable_selinux = false
  # pod network namespaces under the state dir, so down finds and unmounts them
  netns_mounts_under_state_dir = true
  # This VM drops CAP_SYS_RESOURCE from every bounding set, so no process may lower its
  # oom_score_adj below its parent's; clamp the kubelet's negative scores (pause -998,
  # Guaranteed pods -997) to containerd's own instead of failing every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${join(st, 'runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(dir, 'cni', 'net.d')}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(root, 'opt')}"
`;
}

export function kubeletConfig(dir: string, sock: string, ca: string): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_IP,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: ca } },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${CGROUP_ROOT}`,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${sock}`,
    clusterDomain: 'cluster.local',
    clusterDNS: [CLUSTER_DNS],
    // Pods get only the cluster DNS: nothing of the host's resolver configuration.
    resolvConf: '',
    podLogsDir: join(dir, 'pod-logs'),
    maxPods: 60,
    serializeImagePulls: false,
    // Imported images are never garbage-collected or evicted for disk pressure on a test node.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    nodeStatusUpdateFrequency: '5s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    rotateCertificates: false,
    serverTLSBootstrap: false,
    protectKernelDefaults: false,
    failCgroupV1: false,
    shutdownGracePeriod: '0s',
  });
}

export function kubeProxyConfig(kubeconfigPath: string): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: kubeconfigPath },
    mode: 'iptables',
    hostnameOverride: NODE_NAME,
    clusterCIDR: POD_CIDR,
    bindAddress: NODE_IP,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // Leave the host-wide conntrack settings alone (0 = do not set).
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
    iptables: { minSyncPeriod: '1s', syncPeriod: '30s', masqueradeAll: false },
    nodePortAddresses: [POD_CIDR],
  });
}

export function corefile(kubeconfigPath: string): string {
  // Only cluster.local and the reverse zones; every other name is refused (nothing is
  // forwarded anywhere: the node talks to no resolver outside the machine).
  return `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${CLUSTER_DNS}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfigPath}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`;
}
