export { startRedis, freePort, type RedisHandle, type StartRedisOptions } from './redisServer.js';
export { cpuModel } from './cpuModel.js';
export {
  startKubeNode,
  stopKubeNode,
  kubeNodeStatus,
  kubeNodeDir,
  kubeNodeImage,
  NODE_NETNS,
  NODE_BRIDGE,
  NODE_IP,
  NODE_NAME,
  POD_CIDR,
  SERVICE_CIDR,
  CLUSTER_DNS,
  type KubeNode,
  type KubeNodeOptions,
} from './kubeNode.js';
