#!/usr/bin/env bash
# Installs the independent ledger decoder's Python packages (requirements.txt,
# from PyPI) into a virtual environment in a cache outside the clone, keyed
# by the requirements, and prints its python's path. Nothing to do when the
# cache already holds them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
digest="$(sha256sum "$here/requirements.txt" | cut -c1-12)"
root="${RECAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recast}/py-decoder-$digest"
python="$root/bin/python"

if [ ! -f "$root/.installed" ]; then
  echo "installing the Python ledger decoder into $root (first time only)" >&2
  rm -rf "$root"
  python3 -m venv "$root"
  "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  touch "$root/.installed"
fi
echo "$python"
