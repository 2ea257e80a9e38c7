#!/usr/bin/env bash
# Installs the local test broker (nisshi 0.7.0, a Kafka-protocol broker from
# crates.io) into a cache outside the clone, so every clone on this machine
# reuses one build. Prints the binary's path. Building takes ~15 minutes on
# 2 cores the first time, nothing afterwards.
#
# --ignore-rust-version: a dependency declares a newer rustc than it needs.
# Only the in-memory storage engine is used, so the rest stays out.
set -euo pipefail
exec "$(dirname "$0")/cargo-install-cached.sh" nisshi 0.7.0 nisshi \
  --ignore-rust-version --no-default-features --features dynostore
