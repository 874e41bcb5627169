#!/usr/bin/env bash
# Build one more Kubernetes component (e.g. kube-controller-manager) from the Go module
# proxy, next to the kube-apiserver and etcd of scripts/kube/build.sh, with the same
# module set-up (k8s.io/kubernetes@KUBE_VERSION, staging modules replaced by their
# published v0.<minor>.<patch>) and the same version stamp in the binary.
#
#   scripts/kube/build-component.sh kube-controller-manager   # build if missing, print the bin dir
#   LLMTOR_KUBE_REBUILD=1 scripts/kube/build-component.sh kube-controller-manager
#
# Output: ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/kube/<KUBE_VERSION>/bin/<component>, with a
# stamp file .built-<component>. Tests that need a garbage collector run
# kube-controller-manager from there (operator/test/keysOutliveIssuer.test.ts).
set -euo pipefail

COMPONENT="${1:?usage: build-component.sh <kube-controller-manager|kube-scheduler|kubelet|kube-proxy>}"
case "$COMPONENT" in
  kube-controller-manager|kube-scheduler|kubelet|kube-proxy) ;;
  *) echo "[kube/build-component] unknown component $COMPONENT" >&2; exit 2 ;;
esac
KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
CACHE="${LLMTOR_CACHE:-$HOME/.cache/llmtor}"
OUT="$CACHE/kube/$KUBE_VERSION/bin"
STAMP="$OUT/.built-$COMPONENT"

log() { echo "[kube/build-component] $*" >&2; }

if [[ -z "${LLMTOR_KUBE_REBUILD:-}" && -x "$OUT/$COMPONENT" && -f "$STAMP" ]] \
   && [[ "$(head -n1 "$STAMP")" == "$COMPONENT=$KUBE_VERSION"* ]]; then
  log "up to date: $OUT/$COMPONENT ($(head -n1 "$STAMP"))"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
mkdir -p "$OUT"
if [[ -z "${LLMTOR_KUBE_BUILD_LOCKED:-}" ]] && command -v flock >/dev/null; then
  export LLMTOR_KUBE_BUILD_LOCKED=1
  exec flock "$OUT/.build-$COMPONENT.lock" bash "$0" "$@"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llmtor-kube-$COMPONENT.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
t0=$(date +%s)
cd "$WORK"
log "resolving k8s.io/kubernetes@$KUBE_VERSION"
KMOD_JSON="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")"
KGOMOD="$(printf '%s' "$KMOD_JSON" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
KCOMMIT="$(printf '%s' "$KMOD_JSON" | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]*\)",\{0,1\}$/\1/p' | head -n1)"
[[ -f "$KGOMOD" ]] || { log "could not download go.mod of k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
KMINOR="$(echo "$KUBE_VERSION" | cut -d. -f2)"
{
  echo "module llmtor.local/kubebuild"
  echo
  grep -E '^go [0-9]' "$KGOMOD" | head -n1
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  grep -E '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[A-Za-z0-9._/-]+[[:space:]]+=>[[:space:]]+\./staging/' "$KGOMOD" \
    | sed -E 's/^[[:space:]]*(replace[[:space:]]+)?(k8s\.io\/[A-Za-z0-9._\/-]+)[[:space:]]+=>.*/\t\2 => \2 '"$STAGING_VERSION"'/'
  echo ")"
} > go.mod
if grep -qE '^godebug' "$KGOMOD"; then
  awk '/^godebug \(/{p=1} p{print} p&&/^\)/{p=0} /^godebug [^(]/{print}' "$KGOMOD" >> go.mod
fi
LD_KUBE=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD_KUBE+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KMINOR"
  LD_KUBE+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  [[ -n "$KCOMMIT" ]] && LD_KUBE+=" -X $pkg.gitCommit=$KCOMMIT"
done
log "building $COMPONENT $KUBE_VERSION with $(go env GOVERSION)"
go build -trimpath -p "$(nproc)" -ldflags "-s -w$LD_KUBE" -o "$OUT/$COMPONENT.tmp" "k8s.io/kubernetes/cmd/$COMPONENT"
mv -f "$OUT/$COMPONENT.tmp" "$OUT/$COMPONENT"
t1=$(date +%s)
{
  echo "$COMPONENT=$KUBE_VERSION go=$(go env GOVERSION)"
  echo "seconds=$((t1 - t0))"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$STAMP"
log "$COMPONENT built in $((t1 - t0)) s: $OUT/$COMPONENT"
echo "$OUT"
