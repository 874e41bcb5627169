# Shared by scripts/kube/build.sh and scripts/kube/build-node.sh (sourced, not run).

# write_kube_gomod MODULE KUBE_VERSION: write ./go.mod requiring k8s.io/kubernetes@KUBE_VERSION.
# That module refers to its staging modules (k8s.io/api, ...) as v0.0.0 with
# `replace => ./staging/src/...` lines, which only work inside a git checkout; every such
# line becomes `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>`, the published version of
# the same release. Sets KCOMMIT (the release commit) and LD_KUBE (version -X flags).
write_kube_gomod() {
  local module="$1" kver="$2" kmod_json kgomod staging kminor govline
  kmod_json="$(go mod download -json "k8s.io/kubernetes@$kver")"
  kgomod="$(printf '%s' "$kmod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  KCOMMIT="$(printf '%s' "$kmod_json" | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]*\)",\{0,1\}$/\1/p' | head -n1)"
  KMODDIR="$(printf '%s' "$kmod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
  [[ -f "$kgomod" ]] || { echo "could not download go.mod of k8s.io/kubernetes@$kver" >&2; return 1; }
  staging="v0.${kver#v1.}"          # v1.33.13 -> v0.33.13
  kminor="$(echo "$kver" | cut -d. -f2)"
  govline="$(grep -E '^go [0-9]' "$kgomod" | head -n1)"
  {
    echo "module $module"
    echo
    echo "$govline"
    echo
    echo "require k8s.io/kubernetes $kver"
    echo
    echo "replace ("
    grep -E '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[A-Za-z0-9._/-]+[[:space:]]+=>[[:space:]]+\./staging/' "$kgomod" \
      | sed -E 's/^[[:space:]]*(replace[[:space:]]+)?(k8s\.io\/[A-Za-z0-9._\/-]+)[[:space:]]+=>.*/\t\2 => \2 '"$staging"'/'
    echo ")"
  } > go.mod
  # Keep the same godebug defaults as the upstream build, if any.
  if grep -qE '^godebug' "$kgomod"; then
    awk '/^godebug \(/{p=1} p{print} p&&/^\)/{p=0} /^godebug [^(]/{print}' "$kgomod" >> go.mod
  fi
  LD_KUBE=""
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD_KUBE+=" -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kminor"
    LD_KUBE+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    [[ -n "$KCOMMIT" ]] && LD_KUBE+=" -X $pkg.gitCommit=$KCOMMIT"
  done
  echo "$(grep -c '=> k8s.io' go.mod) staging replace lines -> $staging" >&2
}
