#!/usr/bin/env bash
# Installs Onionbalance (PyPI, v3 onion support; Debian's 0.2.2 is older) into a venv in the cache,
# outside the repository. Used by the onion-front tests and the onionbalance image.
#   scripts/install-onionbalance.sh     # prints the path of the onionbalance executable on the last line
# Output: ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/onionbalance-<version>/venv/bin/onionbalance
set -euo pipefail
OB_VERSION="${ONIONBALANCE_VERSION:-0.2.4}"
DIR="${LLMTOR_CACHE:-$HOME/.cache/llmtor}/onionbalance-$OB_VERSION"
EXE="$DIR/venv/bin/onionbalance"
if [[ -x "$EXE" ]] && "$EXE" --version 2>/dev/null | grep -q "$OB_VERSION"; then
  echo "$EXE"
  exit 0
fi
mkdir -p "$DIR"
# Serialise concurrent installs (parallel test processes, CI + dev).
if [[ -z "${LLMTOR_OB_LOCKED:-}" ]] && command -v flock >/dev/null; then
  export LLMTOR_OB_LOCKED=1
  exec flock "$DIR/.lock" bash "$0" "$@"
fi
command -v python3 >/dev/null || { echo "[onionbalance] python3 is not installed (apt-get install python3 python3-venv)" >&2; exit 1; }
echo "[onionbalance] pip install onionbalance==$OB_VERSION into $DIR/venv" >&2
# The check above only passes once pip finished: an interrupted install is redone from scratch.
rm -rf "$DIR/venv"
python3 -m venv "$DIR/venv" >&2
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "onionbalance==$OB_VERSION" >&2
echo "$EXE"
