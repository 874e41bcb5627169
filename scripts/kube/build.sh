#!/usr/bin/env bash
# Build a real kube-apiserver and etcd for tests from the Go module proxy.
#
#   scripts/kube/build.sh            # build if missing, print the bin dir on the last line
#   KUBE_VERSION=v1.33.13 ETCD_VERSION=v3.5.21 scripts/kube/build.sh
#   LLMTOR_KUBE_REBUILD=1 scripts/kube/build.sh   # force a rebuild
#
# Output: ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/kube/<KUBE_VERSION>/bin/{kube-apiserver,etcd}
# (outside the repository). Nothing is built when both binaries and the stamp file
# for the same versions are already there.
#
# kube-apiserver comes from the Go module k8s.io/kubernetes (cmd/kube-apiserver). That
# module refers to its staging modules (k8s.io/api, k8s.io/apiserver, ...) as v0.0.0 with
# `replace => ./staging/src/...` lines, which only work inside a git checkout; here every
# such line is turned into `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>`, the
# published version of the same release. etcd comes from go.etcd.io/etcd/server/v3
# (its package main is etcd itself).
#
# Versions: kubectl at /usr/bin/kubectl is the Google Cloud SDK dispatcher (v1.32.4
# client, ships kubectl 1.27..1.33 and picks the one matching the server); kubectl's
# supported skew is +-1 minor, so a 1.33 server is within it either way. etcd 3.5.21 is
# the version Kubernetes 1.33 is built and tested against (etcd client in its go.mod).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.21}"
CACHE="${LLMTOR_CACHE:-$HOME/.cache/llmtor}"
OUT="$CACHE/kube/$KUBE_VERSION/bin"
STAMP="$OUT/.built"
WANT_STAMP="kube-apiserver=$KUBE_VERSION etcd=$ETCD_VERSION go=$(go env GOVERSION)"

log() { echo "[kube/build] $*" >&2; }

if [[ -z "${LLMTOR_KUBE_REBUILD:-}" && -x "$OUT/kube-apiserver" && -x "$OUT/etcd" && -f "$STAMP" ]] \
   && [[ "$(head -n1 "$STAMP")" == "kube-apiserver=$KUBE_VERSION etcd=$ETCD_VERSION"* ]]; then
  log "up to date: $OUT ($(head -n1 "$STAMP"))"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
mkdir -p "$OUT"
# Serialise concurrent builds of the same version (parallel test processes, CI + dev).
if [[ -z "${LLMTOR_KUBE_BUILD_LOCKED:-}" ]] && command -v flock >/dev/null; then
  export LLMTOR_KUBE_BUILD_LOCKED=1
  exec flock "$OUT/.build.lock" bash "$0" "$@"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llmtor-kube-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
# GOPROXY: the default (proxy.golang.org) is the only reachable Go source here.
BUILD_FLAGS=(-trimpath -p "$(nproc)")

start_all=$(date +%s)

# ---------------------------------------------------------------- kube-apiserver
t0=$(date +%s)
mkdir -p "$WORK/kube"
cd "$WORK/kube"
log "resolving k8s.io/kubernetes@$KUBE_VERSION"
# shellcheck source=scripts/kube/lib.sh
source "$HERE/lib.sh"
write_kube_gomod llmtor.local/kubebuild "$KUBE_VERSION"
log "building kube-apiserver $KUBE_VERSION with $(go env GOVERSION)"
go build "${BUILD_FLAGS[@]}" -ldflags "-s -w$LD_KUBE" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv -f "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
t1=$(date +%s)
log "kube-apiserver built in $((t1 - t0)) s"

# ---------------------------------------------------------------- etcd
mkdir -p "$WORK/etcd"
cd "$WORK/etcd"
{
  echo "module llmtor.local/etcdbuild"
  echo
  echo "go 1.23"
  echo
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
} > go.mod
log "building etcd $ETCD_VERSION"
go build "${BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv -f "$OUT/etcd.tmp" "$OUT/etcd"
t2=$(date +%s)
log "etcd built in $((t2 - t1)) s"

{
  echo "$WANT_STAMP"
  echo "kube_apiserver_seconds=$((t1 - t0)) etcd_seconds=$((t2 - t1)) total_seconds=$((t2 - start_all))"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$STAMP"
log "done in $((t2 - start_all)) s: $OUT"
echo "$OUT"
