#!/usr/bin/env bash
# The local Kafka-protocol broker for the quickstart (nisshi, in memory).
#   broker.sh start [PORT]   start it in the background (default port 9092)
#   broker.sh stop  [PORT]   stop it
# Memory storage: stopping the broker forgets every topic.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-start}
port=${2:-9092}
state="${TMPDIR:-/tmp}/recast-broker-$port"

case "$cmd" in
  start)
    if [ -f "$state.pid" ] && kill -0 "$(cat "$state.pid")" 2>/dev/null; then
      echo "broker already running on 127.0.0.1:$port" >&2
      exit 0
    fi
    bin=$("$here/install-broker.sh")
    "$bin" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine memory://nisshi/ \
      --group-initial-rebalance-delay 0s >"$state.log" 2>&1 &
    echo $! >"$state.pid"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "broker listening on 127.0.0.1:$port (log: $state.log)" >&2
        exit 0
      fi
      sleep 0.1
    done
    echo "broker did not start; see $state.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$state.pid" ]; then
      kill "$(cat "$state.pid")" 2>/dev/null || true
      rm -f "$state.pid"
    fi
    ;;
  *)
    echo "usage: $0 start|stop [PORT]" >&2
    exit 2
    ;;
esac
