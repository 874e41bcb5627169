/**
 * kubenode — start, stop or inspect the single-node cluster of scripts/src/kubeNode.ts.
 *
 *   node scripts/dist/bin/kubenode.js up       # start (cleans a crashed run first); prints the kubeconfig path
 *   node scripts/dist/bin/kubenode.js down     # stop everything and undo the host changes
 *   node scripts/dist/bin/kubenode.js status   # what is running / mounted
 *
 * scripts/kube/node.sh wraps this (and builds the TypeScript first). The node's processes
 * are detached: `up` returns and they keep running until `down`.
 */
import { kubeNodeDir, kubeNodeStatus, startKubeNode, stopKubeNode } from '../src/kubeNode.js';

async function main(): Promise<void> {
  const cmd = process.argv[2];
  const log = (l: string) => process.stderr.write(`[kube/node] ${l}\n`);
  if (cmd === 'up') {
    const node = await startKubeNode({ log });
    process.stdout.write(
      `${JSON.stringify({ kubeconfig: node.kubeconfigPath, server: node.server, dir: node.dir, timings: node.timings })}\n` +
        `export KUBECONFIG=${node.kubeconfigPath}\n`,
    );
  } else if (cmd === 'down') {
    const t0 = Date.now();
    await stopKubeNode({ log });
    log(`down in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } else if (cmd === 'status') {
    const s = await kubeNodeStatus();
    process.stdout.write(`${JSON.stringify({ dir: kubeNodeDir(), ...s })}\n`);
    process.exitCode = s.running.length > 0 || s.netns || s.mounts > 0 ? 0 : 3;
  } else {
    process.stderr.write('usage: kubenode up|down|status\n');
    process.exitCode = 2;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
