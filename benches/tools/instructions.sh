#!/bin/bash
# instructions.sh: counts the instructions an agent binary runs to drain one
# CRI file into the loopback receiver, under valgrind's cachegrind. A
# measuring aid for the performance notes (README, benches/HISTORY.md); not
# part of the agent.
#
# Why: on a shared VM an agent's CPU time moves by 15-20 % from one run to
# the next, so a change worth 3 % cannot be seen in `cargo bench --bench
# e2e`. Instructions counted under valgrind move by ~0.2 % between runs of
# one binary. They are not time (a cache miss costs no instruction), so a
# change is measured both ways; and valgrind runs one thread at a time,
# which is how it found a busy loop (783f2c9) that a native run rarely hits.
#
#   usage: benches/tools/instructions.sh AGENT_BINARY INPUT.log [SECS]
#
# INPUT.log: CRI lines, e.g. the first 16 MiB (whole lines) of the e2e
# bench's one-file input, kept with E2E_KEEP=1:
#   head -c 16777216 /tmp/tailtrace-e2e-input-1-*/pods/*/*/0.log | head -n -1 > /tmp/in.log
# The agent runs the bench's configuration (`cri`, trace detection on pod
# logs) for SECS seconds (default 45: enough to drain 16 MiB under
# valgrind; the script says if the file was not drained), then stops on
# SIGINT. Prints the total instructions and the top functions.
set -eu
bin=$(realpath "$1"); input=$(realpath "$2"); secs=${3:-45}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/tailtrace-instructions.XXXXXX)
trap 'kill $recv 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/pods/default_app-0_5eed/sidecar"
cp "$input" "$work/pods/default_app-0_5eed/sidecar/0.log"
size=$(stat -c %s "$input")
(cd "$root" && cargo build -q --release --example loki_receiver)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$root/target/release/examples/loki_receiver" "$port" --ignore-stdin > "$work/receiver.log" 2>&1 &
recv=$!
cat > "$work/cfg.yaml" <<EOF
server:
  http_listen_port: 0
positions:
  filename: $work/positions.yaml
clients:
  - url: http://127.0.0.1:$port/loki/api/v1/push
    batchwait: 1s
    batchsize: 1048576
    external_labels:
      cluster: bench
scrape_configs:
  - job_name: pods
    static_configs:
      - targets: [localhost]
        labels:
          job: kubernetes-pods
          __path__: $work/pods/*/*/*.log
    pipeline_stages:
      - cri: {}
kubernetes:
  pod_logs_path: $work/pods
EOF
sleep 1
timeout -s INT "$secs" valgrind --tool=cachegrind --cache-sim=no \
    --cachegrind-out-file="$work/cg.out" "$bin" -config.file="$work/cfg.yaml" \
    > "$work/agent.log" 2>&1 || true
if ! grep -q "0.log: '$size'" "$work/positions.yaml" 2>/dev/null; then
    echo "not drained in $secs s: give it more time (third argument)" >&2
    exit 1
fi
cg_annotate "$work/cg.out" | grep -m1 "PROGRAM TOTALS"
cg_annotate "$work/cg.out" | sed -n '/file:function/,$p' | sed -n 3,17p | cut -c1-150
