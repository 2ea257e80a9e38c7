#!/usr/bin/env bash
# Installs a tool from crates.io into a cache outside the clone, so every
# clone on this machine reuses one build, and prints the binary's path.
# Usage: cargo-install-cached.sh CRATE VERSION BINARY [cargo install options…]
set -euo pipefail

crate="$1" version="$2" binary="$3"
shift 3
root="${RECAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recast}/$crate-$version"
bin="$root/bin/$binary"

if [ ! -x "$bin" ]; then
  echo "installing $crate $version into $root (first time only)" >&2
  cargo install "$crate" --version "$version" --locked --root "$root" "$@" >&2
fi
echo "$bin"
