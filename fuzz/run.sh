#!/usr/bin/env bash
# Runs the fuzz targets, each for a fixed time, from corpora seeded with the
# repository's own inputs (the sample traffic, the shipped transforms, case
# files and configurations, and fuzz/seeds/). CI runs every target for 20 s;
# run them longer with e.g. `fuzz/run.sh 600` or `fuzz/run.sh 3600 pipeline`.
# A crash stops the run with its input under fuzz/artifacts/<target>/:
# replay it with `cargo fuzz run -s none <target> <file>`, fix it, and keep
# the input under fuzz/regressions/<target>/ (every run starts from those)
# with a unit test beside the code it broke.
#
# libFuzzer through cargo-fuzz, on the stable toolchain: `-s none` builds
# without a sanitizer (sanitizers need nightly); coverage, and debug
# assertions (`-a`: overflow checks), are on.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
cargo_fuzz="$(./install.sh)"
fuzz() { "$cargo_fuzz" fuzz "$@"; }
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(fuzz list); fi

# Seeds: every input of the repository that a target reads.
seed() { # target file...
  local dir="corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do cp "$f" "$dir/"; done
}
values="$(mktemp -d)"
trap 'rm -rf "$values"' EXIT
python3 - "$values" ../tests/data/legacy-cart.jsonl <<'PY'
import json, sys
out, sample = sys.argv[1], sys.argv[2]
for n, line in enumerate(open(sample, encoding="utf-8")):
    value = json.loads(line).get("value")
    if value is not None:
        open(f"{out}/{n:04}", "w", encoding="utf-8").write(value)
PY
for target in decode_json pipeline avro_round_trip; do seed "$target" "$values"/*; done
seed decode_avro seeds/decode_avro/*
seed log_batches seeds/log_batches/*
seed case_file ../transforms/tests/*.toml
seed config ../deploy/recast.example.toml ../deploy/local/recast.toml
# Inputs that once crashed a target stay in its corpus.
for dir in regressions/*/; do seed "$(basename "$dir")" "$dir"*; done
# transform_file: the first byte says which kind (even: declarative, odd: Rhai).
mkdir -p corpus/transform_file
for f in ../transforms/*.toml; do { printf '\0'; cat "$f"; } > "corpus/transform_file/$(basename "$f")"; done
for f in ../transforms/*.rhai; do { printf '\1'; cat "$f"; } > "corpus/transform_file/$(basename "$f")"; done

mkdir -p logs
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds}s (log: fuzz/logs/$target.log)" >&2
  status=0
  fuzz run -s none -a "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1 \
    >"logs/$target.log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::new_units_added)|panicked|SUMMARY|Test unit written" \
    "logs/$target.log" >&2 || true
  if [ "$status" -ne 0 ]; then
    tail -40 "logs/$target.log" >&2
    echo "fuzz: $target failed (exit $status)" >&2
    exit 1
  fi
done
