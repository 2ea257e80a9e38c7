#!/usr/bin/env bash
# End-to-end throughput of `recast run` against the local broker and an
# in-memory schema registry, per batch size: loads N generated cart commands
# into a 4-partition legacy topic and times the worker draining it (release
# build). Figures in README.md. RECAST_LEDGER__FORMAT=json measures the
# JSON ledger instead of Avro.
#   deploy/local/throughput.sh [RECORDS] [BATCH SIZES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${1:-100000}
shift || true
sizes=${*:-200 1000 5000 20000}
port=${PORT:-19093}
registry_port=${REGISTRY_PORT:-18082}
export RECAST_KAFKA__BROKERS="127.0.0.1:$port"
export RECAST_REGISTRY__URL="http://127.0.0.1:$registry_port"

cargo build --quiet --release --bin recast
recast=target/release/recast
deploy/local/broker.sh start "$port"
$recast dev-registry --listen "127.0.0.1:$registry_port" >/dev/null &
registry_pid=$!
trap 'kill $registry_pid; deploy/local/broker.sh stop "$port"' EXIT

input=$(mktemp)
python3 - "$records" >"$input" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    cart = f"cart-{i % 997}"
    value = {"command": ["ADD_TO_CART", "AddToCart", "add.to.cart"][i % 3], "requestId": f"r-{i}",
             "cartId": cart, "customer": {"id": f"c-{i}", "email": f"u{i}@example.com"},
             "ts": 1764000000000 + i, "sku": f"SKU-{i % 9000}", "qty": 1 + i % 5,
             "_meta": {"host": f"cart-web-{i % 40}", "thread": f"exec-{i}", "retry": i % 4}}
    print(json.dumps({"key": cart, "value": json.dumps(value)}))
PY

printf '%-12s %-10s %s\n' max_records seconds records/s
for size in $sizes; do
  export RECAST_TOPICS__LEGACY="bench-legacy-$size" RECAST_TOPICS__LEDGER="bench-ledger-$size"
  export RECAST_TOPICS__DEAD_LETTER="bench-dlq-$size" RECAST_KAFKA__GROUP_ID="bench-$size"
  $recast create-topics --partitions 4 >/dev/null 2>&1
  $recast load --input "$input" >/dev/null 2>&1
  start=$(date +%s.%N)
  RUST_LOG=warn RECAST_BATCH__MAX_RECORDS=$size $recast run --stop-when-idle 1s
  end=$(date +%s.%N)
  # The idle second is not processing time.
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1])-1; print(f'{sys.argv[3]:<12} {s:<10.2f} {int(int(sys.argv[4])/s)}')" "$start" "$end" "$size" "$records"
done
rm -f "$input"
