#!/usr/bin/env bash
# Installs cargo-fuzz (from crates.io) into the cache the broker is in, and
# prints its path. About 2 minutes on 2 cores the first time.
set -euo pipefail
exec "$(dirname "$0")/../deploy/local/cargo-install-cached.sh" cargo-fuzz 0.13.2 cargo-fuzz
