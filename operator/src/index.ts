/** @llmtor/operator — TokenIssuer operator: key rotation, monthly epochs, Key Vault envelope. */
export * from './clock.js';
export * from './controller.js';
export * from './crdProbe.js';
export * from './duration.js';
export * from './kek.js';
export * from './keySecret.js';
export * from './kubeApi.js';
export * from './leaderElection.js';
export * from './metrics.js';
export * from './operator.js';
export * from './reconciler.js';
export * from './schedule.js';
export * from './spec.js';
export * from './status.js';
export * from './workQueue.js';
