#!/usr/bin/env bash
# Installs what LLM-Tor needs on a fresh Debian machine, idempotently:
#   --node-only   npm dependencies only (enough for `make demo`, `make build`, `make lint`)
#   --packages    npm dependencies and the Debian packages (enough for `make bench`)
#   (default)     also the real parts the tests use: redis-server, tor, chromium,
#                 ripgrep and the Go-built test tools (stripe-mock, helm,
#                 kube-apiserver + etcd, the single-node cluster's binaries) and
#                 code-server, each cached outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export LLMTOR_CACHE="${LLMTOR_CACHE:-$HOME/.cache/llmtor}"
mkdir -p "$LLMTOR_CACHE/bin"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
node_minor=$(node -p 'process.versions.node.split(".")[1]')
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 19 ]; }; then
  echo "LLM-Tor needs Node.js >= 20.19 (found $(node --version)); see docs/node.md" >&2
  exit 1
fi

# npm dependencies: `npm ci` whenever package-lock.json changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.llmtor-lock-hash ] || [ "$(cat node_modules/.llmtor-lock-hash)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" > node_modules/.llmtor-lock-hash
fi

[ "${1:-}" = "--node-only" ] && exit 0

# Debian packages for the real parts in tests.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v tor >/dev/null || need+=(tor)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
command -v chromium >/dev/null || need+=(chromium)
command -v rg >/dev/null || need+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
command -v openssl >/dev/null || need+=(openssl)
# The single-node cluster (docs/kube-node.md): container runtime, CNI plugins, kube-proxy's
# iptables, the API relay (socat), busybox for the test image, gcc for the pause binary.
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v socat >/dev/null || need+=(socat)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v gcc >/dev/null || need+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

[ "${1:-}" = "--packages" ] && exit 0

# Go-built and npm-built test tools (each script is idempotent and caches under $LLMTOR_CACHE).
for s in scripts/install-stripe-mock.sh scripts/install-helm.sh scripts/install-onionbalance.sh scripts/kube/build.sh scripts/kube/build-node.sh scripts/install-code-server.sh; do
  if [ -f "$s" ]; then
    log "$s"
    bash "$s"
  fi
done
log "ready"
