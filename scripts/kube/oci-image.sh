#!/usr/bin/env bash
# Pack a directory into a one-layer OCI image archive, byte-for-byte reproducible
# (sorted entries, mtime 0, uid/gid 0, gzip -n), loadable with `ctr images import`.
#
#   scripts/kube/oci-image.sh ROOTFS_DIR IMAGE_NAME OUT.tar ENTRYPOINT_JSON [USER]
#   scripts/kube/oci-image.sh /tmp/rootfs localhost/llmtor/pause:3.10 pause.tar '["/pause"]' 65535:65535
#
# The image name goes into index.json as `io.containerd.image.name` (what ctr uses as
# the name) and its tag as `org.opencontainers.image.ref.name`.
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $0 ROOTFS NAME OUT.tar ENTRYPOINT_JSON [USER]" >&2; exit 2; }
ROOTFS="$1" NAME="$2" OUT="$3" ENTRYPOINT="$4" USER_SPEC="${5:-}"
TAG="${NAME##*:}"
[[ "$TAG" == "$NAME" || "$TAG" == */* ]] && TAG=latest

DTAR=(tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
L="$(mktemp -d "${TMPDIR:-/tmp}/llmtor-oci.XXXXXX")"
trap 'rm -rf "$L"' EXIT
mkdir -p "$L/blobs/sha256"

put() { # put FILE -> prints "digest size", moves FILE into blobs/
  local d s
  d="$(sha256sum "$1" | cut -d' ' -f1)"
  s="$(stat -c %s "$1")"
  mv "$1" "$L/blobs/sha256/$d"
  echo "sha256:$d $s"
}

"${DTAR[@]}" -C "$ROOTFS" -cf "$L/layer.tar" .
DIFF_ID="sha256:$(sha256sum "$L/layer.tar" | cut -d' ' -f1)"
gzip -n -9 "$L/layer.tar"
read -r LAYER_D LAYER_S < <(put "$L/layer.tar.gz")

USER_JSON=""
[[ -n "$USER_SPEC" ]] && USER_JSON="\"User\":\"$USER_SPEC\","
printf '{"architecture":"amd64","os":"linux","config":{%s"Entrypoint":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
  "$USER_JSON" "$ENTRYPOINT" "$DIFF_ID" > "$L/config.json"
read -r CONFIG_D CONFIG_S < <(put "$L/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
  "$CONFIG_D" "$CONFIG_S" "$LAYER_D" "$LAYER_S" > "$L/manifest.json"
read -r MANIFEST_D MANIFEST_S < <(put "$L/manifest.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$MANIFEST_D" "$MANIFEST_S" "$NAME" "$TAG" > "$L/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"

"${DTAR[@]}" -C "$L" -cf "$OUT.tmp" oci-layout index.json blobs
mv -f "$OUT.tmp" "$OUT"
echo "$MANIFEST_D"
