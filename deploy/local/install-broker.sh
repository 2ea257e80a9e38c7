#!/usr/bin/env bash
# Installs the local test broker (nisshi 0.7.0, a Kafka-protocol broker from
# crates.io) into a cache outside the clone, so every clone on this machine
# reuses one build. Prints the binary's path. Building takes ~15 minutes on
# 2 cores the first time, nothing afterwards.
set -euo pipefail

version=0.7.0
root="${RECAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recast}/nisshi-$version"
bin="$root/bin/nisshi"

if [ ! -x "$bin" ]; then
  echo "installing nisshi $version into $root (first time only, ~15 min)" >&2
  # --ignore-rust-version: a dependency declares a newer rustc than it needs.
  # Only the in-memory storage engine is used, so the rest stays out.
  cargo install nisshi --version "$version" --locked --ignore-rust-version \
    --no-default-features --features dynostore --root "$root" >&2
fi
echo "$bin"
