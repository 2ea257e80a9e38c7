#!/usr/bin/env bash
# Instructions per record of the whole offline record path, `recast replay`
# over N generated cart commands (embedded default: decode, the shipped
# chain, dedupe, Avro encoding and schema check), counted by valgrind's
# callgrind, which repeats to the instruction where timings here do not.
# Start-up is taken out by subtracting a run over an empty input.
#   deploy/local/instructions.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${1:-50000}
cargo build --quiet --release --bin recast
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deploy/local/cart-commands.py "$records" >"$work/records.jsonl"
: >"$work/empty.jsonl"
count() {
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/out" \
    target/release/recast replay --input "$1" --output /dev/null 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
full=$(count "$work/records.jsonl")
empty=$(count "$work/empty.jsonl")
echo "$records records: $(( (full - empty) / records )) instructions per record"
