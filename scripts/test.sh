#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests
# need, then runs every unit and integration test against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# util-linux provides setpriv (the unreadable-directory test drops to `nobody`).
if ! command -v setpriv >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; fi
fi
# systemd-journal-remote makes real journal files for the journal tests
# (they say so and skip if it cannot be installed); journalctl reads them.
if [ ! -x /lib/systemd/systemd-journal-remote ] || ! command -v journalctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq systemd systemd-journal-remote >/dev/null \
      || echo "test.sh: could not install systemd-journal-remote; the journal file tests will be skipped"
  fi
fi
cargo test --release --locked
# The Kubernetes manifests in deploy/: kustomization references, the
# Kubernetes schemas (kubernetes-validate from PyPI, installed if missing),
# and the configs they ship, checked by the binary the tests just built.
echo "test.sh: validating the Kubernetes manifests in deploy/ (scripts/validate-manifests.sh)"
bash scripts/validate-manifests.sh
