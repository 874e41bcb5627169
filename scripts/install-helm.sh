#!/usr/bin/env bash
# Hook for scripts/setup.sh: helm is built with `go install` by helm/install-helm.sh.
exec bash "$(dirname "$0")/../helm/install-helm.sh" "$@"
