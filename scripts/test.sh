#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests
# need, then runs every unit and integration test against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# util-linux provides setpriv (the unreadable-directory test drops to `nobody`).
if ! command -v setpriv >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; fi
fi
cargo test --release --locked
# The Kubernetes manifests in deploy/: kustomization references, the
# Kubernetes schemas (kubernetes-validate from PyPI, installed if missing),
# and the configs they ship, checked by the binary the tests just built.
echo "test.sh: validating the Kubernetes manifests in deploy/ (scripts/validate-manifests.sh)"
bash scripts/validate-manifests.sh
