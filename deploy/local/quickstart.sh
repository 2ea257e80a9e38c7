#!/usr/bin/env bash
# The quickstart: starts a local broker (installing it the first time) and
# an in-memory schema registry, creates the topics, loads the sample legacy
# traffic, runs recast on the embedded default configuration until the
# legacy topic is drained, and shows what landed in the ledger (Avro,
# decoded through the registry) and in the dead-letter topic.
#   deploy/local/quickstart.sh            (broker on 127.0.0.1:9092, registry on :8081)
#   PORT=19092 REGISTRY_PORT=18081 deploy/local/quickstart.sh (other ports)
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-9092}
registry_port=${REGISTRY_PORT:-8081}
export RECAST_KAFKA__BROKERS="127.0.0.1:$port"
export RECAST_REGISTRY__URL="http://127.0.0.1:$registry_port"

cargo build --quiet --bin recast
recast=target/debug/recast

deploy/local/broker.sh start "$port"
$recast dev-registry --listen "127.0.0.1:$registry_port" >/dev/null &
registry_pid=$!
trap 'kill $registry_pid; deploy/local/broker.sh stop "$port"' EXIT

step() { printf '\n== %s\n' "$*"; }
step "the mapping against its golden cases (recast test)"
if ! golden=$(RUST_LOG=warn $recast test); then echo "$golden"; exit 1; fi
echo "$golden" | tail -n 2
step "configuration, transforms, schemas and their registry subjects (recast check)"
RUST_LOG=warn $recast check | grep -v '^  transform\|^  schema'
step "the mapping over the sample, offline (recast replay)"
RUST_LOG=warn $recast replay --input tests/data/legacy-cart.jsonl --output /dev/null
step "creating topics"
$recast create-topics --partitions 4
step "loading the sample legacy traffic"
$recast load --input tests/data/legacy-cart.jsonl
step "running recast until the legacy topic is drained"
RUST_LOG=${RUST_LOG:-warn,recast::worker=info} $recast run --stop-when-idle 3s
step "ledger (first 5 events, then counts per event type)"
$recast inspect --topic ledger --limit 5
step "dead-letter topic (every rejected record, with its reason)"
$recast inspect --topic dead-letter
