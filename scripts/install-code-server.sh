#!/usr/bin/env bash
# Installs code-server (a real VS Code in the browser, for the extension's end-to-end test)
# from npm into a cache outside the repository, idempotently:
#   $LLMTOR_CACHE/code-server-<version>/node_modules/.bin/code-server   (LLMTOR_CACHE defaults to ~/.cache/llmtor)
# 4.100.3 (VS Code 1.100.3) is the last release that runs on Node 20.
# Needs: Debian's ripgrep (its `rg` is packed into the archive @vscode/ripgrep's postinstall
# would otherwise download from GitHub), libkrb5-dev (for the kerberos module), a C++
# toolchain for node-pty. Prints the binary's path on success.
set -euo pipefail
VERSION="${CODE_SERVER_VERSION:-4.100.3}"
CACHE="${LLMTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmtor}"
DEST="$CACHE/code-server-$VERSION"
BIN="$DEST/node_modules/.bin/code-server"

if [ -x "$BIN" ] && [ -f "$DEST/.llmtor-complete" ]; then
  echo "$BIN"
  exit 0
fi

RG=$(command -v rg || true)
[ -n "$RG" ] || { echo "install-code-server: needs ripgrep (apt-get install ripgrep)" >&2; exit 1; }
dpkg -s libkrb5-dev >/dev/null 2>&1 || echo "install-code-server: warning: libkrb5-dev is not installed; the kerberos module may fail to build" >&2

case "$(uname -m)" in
  x86_64) RG_TARGET=x86_64-unknown-linux-musl ;;
  aarch64) RG_TARGET=aarch64-unknown-linux-musl ;;
  *) echo "install-code-server: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$DEST"
cd "$DEST"
[ -f package.json ] || echo '{ "name": "llmtor-code-server", "private": true }' > package.json

# As root, npm drops privileges for scripts unless told not to; node-pty's build runs `npx node-gyp`.
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_fund=false npm_config_audit=false
export TMPDIR="$SCRATCH"

# 1. Fetch without running install scripts, to learn which @vscode/ripgrep versions are in the tree.
npm install --ignore-scripts --no-save "code-server@$VERSION" >&2

# 2. Pre-seed the download cache of every @vscode/ripgrep in the tree with Debian's rg (rg at
#    the archive's top level). code-server installs VS Code's own dependencies in its
#    postinstall, so the versions come from the shrinkwrap files as well as from node_modules.
RG_RELEASE="${RIPGREP_RELEASE:-v13.0.0-10}"
versions=$(node -e '
  const fs = require("fs"), path = require("path");
  const out = new Set();
  const walk = (d, depth) => {
    if (depth > 8) return;
    let entries = [];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.name === "npm-shrinkwrap.json" || e.name === "package-lock.json") {
        try { for (const [k, v] of Object.entries(JSON.parse(fs.readFileSync(p, "utf8")).packages || {})) if (k.endsWith("node_modules/@vscode/ripgrep") && v.version) out.add(v.version); } catch {}
      } else if (e.name === "package.json" && d.endsWith(path.join("@vscode", "ripgrep"))) {
        try { out.add(JSON.parse(fs.readFileSync(p, "utf8")).version); } catch {}
      }
    }
  };
  walk("node_modules", 0);
  console.log([...out].join(" "));
')
for ver in $versions; do
  mkdir -p "$SCRATCH/vscode-ripgrep-cache-$ver"
  tar -czf "$SCRATCH/vscode-ripgrep-cache-$ver/ripgrep-$RG_RELEASE-$RG_TARGET.tar.gz" -C "$(dirname "$RG")" rg
done
echo "install-code-server: seeded the ripgrep cache for @vscode/ripgrep ${versions:-(none found)} from $RG" >&2

# 3. Now run the install scripts (native modules, ripgrep from the seeded cache, code-server's own postinstall).
npm rebuild >&2

[ -x "$BIN" ] || { echo "install-code-server: $BIN missing after install" >&2; exit 1; }
HOME="$SCRATCH" XDG_CONFIG_HOME="$SCRATCH" "$BIN" --version >&2
touch "$DEST/.llmtor-complete"
echo "$BIN"
