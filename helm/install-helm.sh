#!/usr/bin/env bash
# Installs helm (for the chart tests) from the Go module proxy into the cache, outside the repository.
#   helm/install-helm.sh          # prints the path of the binary on the last line
# Output: ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/bin/helm (nothing is done when that version is already there).
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
BIN="${LLMTOR_CACHE:-$HOME/.cache/llmtor}/bin"
mkdir -p "$BIN"
if [[ -x "$BIN/helm" ]] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "$BIN/helm"
  exit 0
fi
# Serialise concurrent installs (parallel test processes, CI + dev).
if [[ -z "${LLMTOR_HELM_LOCKED:-}" ]] && command -v flock >/dev/null; then
  export LLMTOR_HELM_LOCKED=1
  exec flock "$BIN/.helm.lock" bash "$0" "$@"
fi
command -v go >/dev/null || { echo "[helm] go is not installed; cannot build helm $HELM_VERSION" >&2; exit 1; }
echo "[helm] go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
GOBIN="$BIN" CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local \
  go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$BIN/helm"
