#!/usr/bin/env bash
# recast end to end against a bare exactly-once pipe (benches/bare_pipe.rs:
# the same transactions, no transform), in one run, alternating, on the
# same freshly loaded legacy topic (each run reads it under a group of its
# own and writes a ledger of its own). Release builds, the local broker and
# an in-memory schema registry. Per run: wall records/s (from start, group
# join included, to the last commit), CPU µs per record (user + system of
# the process, from its rusage), peak RSS, and the CPU split between the
# process's own threads and the Kafka client library's (thread-cpu.py);
# then the medians and recast's ratios to the pipe. Figures in
# docs/performance.md.
#   deploy/local/throughput.sh [RECORDS] [ROUNDS] [BATCH SIZES...]
# RECAST_DEDUPE__CAPACITY, RECAST_LEDGER__FORMAT=json and any other
# override apply to recast as usual; RECAST_BIN runs another build of recast
# (an older commit's), the pipe being the yardstick both are measured by;
# PIPE_BIN runs another build of the pipe (an older commit's yardstick).
# BASELINE_BIN adds a second build of recast to every round ("baseline"),
# so that two builds are compared in one run, on one topic, alternating.
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${1:-500000}
rounds=${2:-3}
shift 2 || true
sizes=${*:-2000 5000}
port=${PORT:-19093}
registry_port=${REGISTRY_PORT:-18082}
idle_ms=1000
export RECAST_KAFKA__BROKERS="127.0.0.1:$port"
export RECAST_REGISTRY__URL="http://127.0.0.1:$registry_port"

cargo build --quiet --release --bin recast
recast=${RECAST_BIN:-target/release/recast}
pipe=${PIPE_BIN:-$(cargo bench --quiet --no-run --bench bare_pipe --message-format=json |
  python3 -c 'import json,sys; print(next(m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "bare_pipe"))')}
deploy/local/broker.sh start "$port"
$recast dev-registry --listen "127.0.0.1:$registry_port" >/dev/null &
registry_pid=$!
work=$(mktemp -d)
trap 'kill $registry_pid; deploy/local/broker.sh stop "$port"; rm -rf "$work"' EXIT

deploy/local/cart-commands.py "$records" >"$work/input.jsonl"
legacy="bench-legacy-$$"
export RECAST_TOPICS__LEGACY=$legacy RECAST_TOPICS__LEDGER="bench-ledger-$$-0" RECAST_TOPICS__DEAD_LETTER="bench-dlq-$$"
$recast create-topics --partitions 4 >/dev/null 2>&1
$recast load --input "$work/input.jsonl" >/dev/null 2>&1

run=0
# One run of `tool` at batch size `size`: appends "tool size wall cpu rss
# own client".
measure() {
  local tool=$1 size=$2
  run=$((run + 1))
  local ledger="bench-ledger-$$-$run" group="bench-$$-$run"
  RECAST_TOPICS__LEDGER=$ledger $recast create-topics --partitions 4 >/dev/null 2>&1
  local start end
  start=$(date +%s.%N)
  if [ "$tool" != pipe ]; then
    local bin=$recast
    [ "$tool" = baseline ] && bin=$BASELINE_BIN
    RUST_LOG=warn RECAST_TOPICS__LEDGER=$ledger RECAST_KAFKA__GROUP_ID=$group \
      RECAST_KAFKA__INSTANCE_ID=bench RECAST_BATCH__MAX_RECORDS=$size \
      /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" run --stop-when-idle "${idle_ms}ms" &
  else
    PIPE_BROKERS=$RECAST_KAFKA__BROKERS PIPE_LEGACY=$legacy PIPE_LEDGER=$ledger PIPE_GROUP=$group \
      PIPE_MAX_RECORDS=$size PIPE_IDLE_MS=$idle_ms \
      /usr/bin/time -f "%U %S %M" -o "$work/time" "$pipe" >"$work/copied" &
  fi
  deploy/local/thread-cpu.py $! >"$work/threads"
  wait $!
  if [ "$tool" = pipe ]; then
    # A pipe that copied less would flatter it.
    grep -q "^$records records copied" "$work/copied" ||
      { echo "the pipe: $(cat "$work/copied"), not $records records" >&2; exit 1; }
  fi
  end=$(date +%s.%N)
  python3 - "$tool" "$size" "$start" "$end" "$records" "$idle_ms" "$(cat "$work/time")" "$(cat "$work/threads")" <<'PY' | tee -a "$work/runs"
import sys
tool, size, start, end, records, idle_ms, usage, threads = sys.argv[1:]
user, system, rss_kb = usage.split()
own, client = (float(s) * 1e6 / int(records) for s in threads.split())
wall = float(end) - float(start) - int(idle_ms) / 1000  # the idle wait is not work
cpu_us = (float(user) + float(system)) * 1e6 / int(records)
print(f"{tool:<8} {size:>6} {int(records) / wall:>12,.0f} {cpu_us:>10.2f} {int(rss_kb) / 1024:>9.0f} {own:>7.2f} {client:>8.2f}")
PY
}

tools=(pipe recast)
[ -n "${BASELINE_BIN:-}" ] && tools=(pipe baseline recast)
printf '%-8s %6s %12s %10s %9s %7s %8s\n' tool batch records/s cpu_us/rec rss_MB own_us client_us
for size in $sizes; do
  for round in $(seq "$rounds"); do
    # Each round starts with the next tool: the machine's drift hits all
    # alike.
    for i in "${!tools[@]}"; do
      measure "${tools[$(((i + round - 1) % ${#tools[@]}))]}" "$size"
    done
  done
done

echo
echo "medians, and recast / pipe"
python3 - "$work/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, size, rate, *figures = line.split()
    runs[(tool, int(size))].append((float(rate.replace(",", "")), *map(float, figures)))
builds = [t for t in ("baseline", "recast") if any(tool == t for tool, _ in runs)]
ratios, threads = [], []
for size in sorted({s for _, s in runs}):
    p = [statistics.median(c) for c in zip(*runs[("pipe", size)])]
    for build in builds:
        r = [statistics.median(c) for c in zip(*runs[(build, size)])]
        ratios.append(f"{build:<8} {size:>6} {p[0]:>11,.0f} {r[0]:>12,.0f} {r[0] / p[0]:>7.2f} {p[1]:>8.2f} {r[1]:>9.2f} {r[1] / p[1]:>6.2f} {p[2]:>8.0f} {r[2]:>9.0f} {r[2] / p[2]:>6.2f}")
        threads.append(f"{build:<8} {size:>6} {p[3]:>9.2f} {p[4]:>12.2f} {r[3]:>11.2f} {r[4]:>14.2f}")
print(f"{'build':<8} {'batch':>6} {'pipe rec/s':>11} {'recast rec/s':>12} {'wall x':>7} {'pipe µs':>8} {'recast µs':>9} {'cpu x':>6} {'pipe MB':>8} {'recast MB':>9} {'rss x':>6}")
print("\n".join(ratios))
print()
print("CPU µs per record by thread: the process's own, and the client library's (rdk:*)")
print(f"{'build':<8} {'batch':>6} {'pipe own':>9} {'pipe client':>12} {'recast own':>11} {'recast client':>14}")
print("\n".join(threads))
PY
