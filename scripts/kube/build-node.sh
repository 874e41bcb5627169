#!/usr/bin/env bash
# Build what a real single-node cluster needs beyond kube-apiserver + etcd
# (scripts/kube/build.sh builds those): kubelet, kube-scheduler, kube-controller-manager,
# kube-proxy, crictl, CoreDNS, and two tiny OCI images (pause, busybox). See docs/kube-node.md.
#
#   scripts/kube/build-node.sh            # build if missing, print the bin dir on the last line
#   LLMTOR_KUBE_REBUILD=1 scripts/kube/build-node.sh
#
# Output: ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/kube/<KUBE_VERSION>/bin/{kubelet,kube-scheduler,
# kube-controller-manager,kube-proxy,crictl,coredns} and .../images/{pause,busybox}.tar,
# with a stamp (.built-node). containerd, runc, the CNI plugins and busybox come from
# Debian (scripts/setup.sh installs them).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
# The CoreDNS series Kubernetes 1.33 ships (kubeadm 1.33 uses 1.12.0); latest patch.
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.4}"
CACHE="${LLMTOR_CACHE:-$HOME/.cache/llmtor}"
OUT="$CACHE/kube/$KUBE_VERSION/bin"
IMAGES="$CACHE/kube/$KUBE_VERSION/images"
STAMP="$OUT/.built-node"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
WANT="kube=$KUBE_VERSION crictl=$CRICTL_VERSION coredns=$COREDNS_VERSION busybox=$(sha256sum "$BUSYBOX" 2>/dev/null | cut -c1-16)"
NODE_BINS=(kubelet kube-scheduler kube-controller-manager kube-proxy crictl coredns)

log() { echo "[kube/build-node] $*" >&2; }

all_present() {
  local b
  for b in "${NODE_BINS[@]}"; do [[ -x "$OUT/$b" ]] || return 1; done
  [[ -f "$IMAGES/pause.tar" && -f "$IMAGES/busybox.tar" && -f "$STAMP" ]] && [[ "$(head -n1 "$STAMP")" == "$WANT" ]]
}

if [[ -z "${LLMTOR_KUBE_REBUILD:-}" ]] && all_present; then
  log "up to date: $OUT ($(head -n1 "$STAMP"))"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
command -v gcc >/dev/null || { log "gcc is not installed (needed for the pause binary)"; exit 1; }
[[ -x "$BUSYBOX" ]] || { log "$BUSYBOX missing: apt-get install busybox-static"; exit 1; }
mkdir -p "$OUT" "$IMAGES"
if [[ -z "${LLMTOR_KUBE_NODE_BUILD_LOCKED:-}" ]] && command -v flock >/dev/null; then
  export LLMTOR_KUBE_NODE_BUILD_LOCKED=1
  exec flock "$OUT/.build-node.lock" bash "$0" "$@"
fi
# Another process may have finished the build while we waited for the lock.
if [[ -z "${LLMTOR_KUBE_REBUILD:-}" ]] && all_present; then echo "$OUT"; exit 0; fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llmtor-kube-node-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
BUILD_FLAGS=(-trimpath -p "$(nproc)")
start_all=$(date +%s)

# ------------------------------------------------- kubelet, scheduler, controller-manager, proxy
# One `go build` for the four: they share most packages, compiled once.
t0=$(date +%s)
mkdir -p "$WORK/kube" "$WORK/out"
cd "$WORK/kube"
# shellcheck source=scripts/kube/lib.sh
source "$HERE/lib.sh"
write_kube_gomod llmtor.local/kubenodebuild "$KUBE_VERSION"
log "building kubelet kube-scheduler kube-controller-manager kube-proxy $KUBE_VERSION with $(go env GOVERSION)"
go build "${BUILD_FLAGS[@]}" -ldflags "-s -w$LD_KUBE" -o "$WORK/out/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-proxy
for b in kubelet kube-scheduler kube-controller-manager kube-proxy; do mv -f "$WORK/out/$b" "$OUT/$b"; done
t1=$(date +%s)
log "kubernetes node binaries built in $((t1 - t0)) s"

# ------------------------------------------------- pause (C, static) + OCI image
PAUSE_DIR="$KMODDIR/build/pause"
PAUSE_TAG="$(sed -n 's/^TAG[[:space:]]*?\{0,1\}=[[:space:]]*\([0-9.]*\).*/\1/p' "$PAUSE_DIR/Makefile" | head -n1)"
[[ -n "$PAUSE_TAG" ]] || PAUSE_TAG=3.10
mkdir -p "$WORK/pause/rootfs"
gcc -Os -static -DVERSION="v$PAUSE_TAG-llmtor" -o "$WORK/pause/rootfs/pause" "$PAUSE_DIR/linux/pause.c"
strip "$WORK/pause/rootfs/pause"
touch -d @0 "$WORK/pause/rootfs/pause"
PAUSE_DIGEST="$(bash "$HERE/oci-image.sh" "$WORK/pause/rootfs" "localhost/llmtor/pause:$PAUSE_TAG" "$IMAGES/pause.tar" '["/pause"]' 65535:65535)"
echo "localhost/llmtor/pause:$PAUSE_TAG" > "$IMAGES/pause.name"

# busybox (static, from Debian's busybox-static): a tiny image for tests (httpd, wget, nslookup).
mkdir -p "$WORK/busybox/rootfs/bin" "$WORK/busybox/rootfs/etc" "$WORK/busybox/rootfs/tmp" "$WORK/busybox/rootfs/www"
cp "$BUSYBOX" "$WORK/busybox/rootfs/bin/busybox"
for a in sh wget nslookup httpd sleep cat echo ls; do ln -s busybox "$WORK/busybox/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$WORK/busybox/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$WORK/busybox/rootfs/etc/group"
chmod 1777 "$WORK/busybox/rootfs/tmp"
BUSYBOX_DIGEST="$(bash "$HERE/oci-image.sh" "$WORK/busybox/rootfs" localhost/llmtor/busybox:test "$IMAGES/busybox.tar" '["/bin/busybox"]')"
echo localhost/llmtor/busybox:test > "$IMAGES/busybox.name"
t2=$(date +%s)
log "pause $PAUSE_TAG ($PAUSE_DIGEST) and busybox ($BUSYBOX_DIGEST) images in $((t2 - t1)) s"

# ------------------------------------------------- crictl
mkdir -p "$WORK/crictl"
cd "$WORK/crictl"
printf 'module llmtor.local/crictlbuild\n\ngo 1.26\n\nrequire sigs.k8s.io/cri-tools %s\n' "$CRICTL_VERSION" > go.mod
log "building crictl $CRICTL_VERSION"
go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
  -o "$OUT/crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl
mv -f "$OUT/crictl.tmp" "$OUT/crictl"
t3=$(date +%s)
log "crictl built in $((t3 - t2)) s"

# ------------------------------------------------- CoreDNS
mkdir -p "$WORK/coredns"
cd "$WORK/coredns"
printf 'module llmtor.local/corednsbuild\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > go.mod
log "building coredns $COREDNS_VERSION"
go build "${BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$OUT/coredns.tmp" github.com/coredns/coredns
mv -f "$OUT/coredns.tmp" "$OUT/coredns"
t4=$(date +%s)
log "coredns built in $((t4 - t3)) s"

{
  echo "$WANT"
  echo "kube_node_seconds=$((t1 - t0)) images_seconds=$((t2 - t1)) crictl_seconds=$((t3 - t2)) coredns_seconds=$((t4 - t3)) total_seconds=$((t4 - start_all))"
  echo "pause=$PAUSE_DIGEST busybox=$BUSYBOX_DIGEST"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$STAMP"
log "done in $((t4 - start_all)) s: $OUT"
echo "$OUT"
