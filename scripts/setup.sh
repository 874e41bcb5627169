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

# Test tools, each script idempotent and caching under $LLMTOR_CACHE. The Go builds are CPU-bound
# and run one after the other (kube-apiserver first: the node components reuse most of its build
# cache). Beside them, in the background, what mostly waits on the network: Onionbalance (PyPI),
# code-server (npm), and the image layers the Helm end-to-end test builds (Debian and npm
# downloads, cached under $LLMTOR_CACHE/images). See docs/kube-node.md, "Time budget".
bg_log="$(mktemp "${TMPDIR:-/tmp}/llmtor-setup-bg.XXXXXX")"
(
  set -e
  for s in scripts/install-onionbalance.sh scripts/install-code-server.sh; do
    echo "[setup] $s"
    bash "$s"
  done
  if [ "$(id -u)" -eq 0 ]; then
    echo "[setup] image layers (scripts/images/build.mjs)"
    warm="$(mktemp -d "${TMPDIR:-/tmp}/llmtor-setup-images.XXXXXX")"
    node scripts/images/build.mjs --out "$warm" && rm -rf "$warm"
  fi
) > "$bg_log" 2>&1 &
bg=$!
for s in scripts/install-stripe-mock.sh scripts/install-helm.sh scripts/kube/build.sh scripts/kube/build-node.sh; do
  log "$s"
  bash "$s" || { kill "$bg" 2>/dev/null || true; wait "$bg" 2>/dev/null || true; rm -f "$bg_log"; exit 1; }
done
log "waiting for the background installs"
bg_status=0
wait "$bg" || bg_status=$?
sed 's/^/  /' "$bg_log"
rm -f "$bg_log"
if [ "$bg_status" -ne 0 ]; then
  echo "setup: a background install failed (exit $bg_status), see above" >&2
  exit "$bg_status"
fi
log "ready"
