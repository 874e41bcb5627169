#!/usr/bin/env bash
# Start / stop a real single-node Kubernetes cluster on this machine (docs/kube-node.md).
#
#   scripts/kube/node.sh up       # build what is missing, start; prints `export KUBECONFIG=...`
#   scripts/kube/node.sh down     # stop, unmount, delete the network namespace, restore sysctls
#   scripts/kube/node.sh status
#
# Needs root. Run dir: ${LLMTOR_NODE_DIR:-/var/lib/llmtor-node}.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ ! -f scripts/dist/bin/kubenode.js || scripts/src/kubeNode.ts -nt scripts/dist/src/kubeNode.js || scripts/bin/kubenode.ts -nt scripts/dist/bin/kubenode.js ]]; then
  bash scripts/setup.sh --node-only >/dev/null
  npx tsc -b scripts
fi
if [[ "${1:-}" == up ]]; then
  bash scripts/kube/build.sh >/dev/null
  bash scripts/kube/build-node.sh >/dev/null
fi
exec node scripts/dist/bin/kubenode.js "$@"
