#!/usr/bin/env bash
# Installs cargo-fuzz (from crates.io) into a cache outside the clone, like
# the broker, and prints its path. About 2 minutes on 2 cores the first time.
set -euo pipefail

version=0.13.2
root="${RECAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recast}/cargo-fuzz-$version"
bin="$root/bin/cargo-fuzz"

if [ ! -x "$bin" ]; then
  echo "installing cargo-fuzz $version into $root (first time only)" >&2
  cargo install cargo-fuzz --version "$version" --locked --root "$root" >&2
fi
echo "$bin"
