#!/bin/sh
# Installs stripe-mock (Stripe's OpenAPI-driven API stand-in, a Go module) into
# ${LLMTOR_CACHE:-$HOME/.cache/llmtor}/bin if it is not there yet. Needs Go and
# the Go module proxy. Prints the binary's path.
set -eu
CACHE="${LLMTOR_CACHE:-$HOME/.cache/llmtor}"
BIN="$CACHE/bin/stripe-mock"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-stripe-mock: Go is not installed (needed for 'go install github.com/stripe/stripe-mock@latest')" >&2
  exit 1
fi
mkdir -p "$CACHE/bin"
GOBIN="$CACHE/bin" go install github.com/stripe/stripe-mock@latest >&2
echo "$BIN"
