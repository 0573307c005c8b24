#!/usr/bin/env bash
# Writes a fresh copy of the bundled sample with current timestamps, plus a
# promtail.yaml for it, so that a real Loki accepts every line (Loki rejects
# entries older than reject_old_samples_max_age, 7 days by default, and the
# files in examples/sample/ are dated 2025).
#
#   bash examples/sample/generate.sh [OUT]        # OUT: /tmp/tailtrace-sample
#   target/release/tailtrace -config.file=OUT/promtail.yaml -dry-run
#
# OUT gets pods/ and docker/ (the same files as examples/sample/, line for
# line: containerd and CRI-O timestamps, split P/P/F lines, the restarted
# container's 0.log and 1.log, the docker json-file log with a split line),
# and promtail.yaml: the bundled sample's config, with one static target per
# container directory carrying the pod's labels (namespace, pod, container).
# Only timestamps change: every one is moved by the same whole number of
# seconds, so the newest is one second ago; their spacing, precision and zone
# suffix (Z or +00:00) stay as in the sample. Any positions file in OUT is
# removed, so the new tree is shipped from its start.
#
# Needs bash 4.2 or later and coreutils (mkdir, rm), nothing else.
set -euo pipefail
export TZ=UTC0 LC_ALL=C
shopt -s nullglob globstar

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-/tmp/tailtrace-sample}
mkdir -p -- "$out"
out=$(cd -- "$out" && pwd)
marker="$out/.tailtrace-sample"
if [[ ! -e $marker ]]; then
  for d in pods docker promtail.yaml; do
    if [[ -e $out/$d ]]; then
      echo "generate.sh: $out/$d exists and $out was not written by this script; choose another directory" >&2
      exit 1
    fi
  done
fi
rm -rf -- "$out/pods" "$out/docker" "$out/promtail.yaml" "$out"/*positions*.yaml
: >"$marker"

# ---- timestamps -----------------------------------------------------------
# A timestamp is YYYY-MM-DDThh:mm:ss followed by an optional fraction and a
# zone; the date and clock are shifted, the rest is kept byte for byte.
re_ts='^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$'
re_cri='^([^ ]+)( .*)$'
re_docker='^(.*"time": *")([^"]+)(".*)$'

# Seconds since the epoch of the wall clock in BASH_REMATCH (the zone is
# kept as written, so shifting the wall clock shifts the instant alike).
wall_secs() {
  local y=$((10#${BASH_REMATCH[1]})) m=$((10#${BASH_REMATCH[2]})) d=$((10#${BASH_REMATCH[3]}))
  local era yoe doy doe
  y=$((y - (m <= 2)))
  era=$(((y >= 0 ? y : y - 399) / 400))
  yoe=$((y - era * 400))
  doy=$(((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1))
  doe=$((yoe * 365 + yoe / 4 - yoe / 100 + doy))
  REPLY=$(((era * 146097 + doe - 719468) * 86400 + 10#${BASH_REMATCH[4]} * 3600 + 10#${BASH_REMATCH[5]} * 60 + 10#${BASH_REMATCH[6]}))
}

# The timestamp of a sample line, or nothing (a line without one is copied).
line_ts() {
  local line=$1
  REPLY=
  if [[ $line =~ $re_cri && ${BASH_REMATCH[1]} =~ $re_ts ]]; then
    REPLY=${line%% *}
  elif [[ $line =~ $re_docker && ${BASH_REMATCH[2]} =~ $re_ts ]]; then
    [[ $line =~ $re_docker ]]
    REPLY=${BASH_REMATCH[2]}
  fi
}

shift_ts() { # $1 timestamp, $2 seconds -> REPLY
  [[ $1 =~ $re_ts ]]
  local rest=${BASH_REMATCH[7]}${BASH_REMATCH[8]} s
  wall_secs
  printf -v s '%(%Y-%m-%dT%H:%M:%S)T' "$((REPLY + $2))"
  REPLY=$s$rest
}

files=()
for f in "$here"/pods/** "$here"/docker/**; do
  [[ -f $f && $f != *.sh && $f != *.yaml ]] && files+=("$f")
done
if ((${#files[@]} == 0)); then
  echo "generate.sh: no sample files under $here/pods or $here/docker" >&2
  exit 1
fi

# Pass 1: the newest timestamp of the sample.
newest=
for f in "${files[@]}"; do
  while IFS= read -r line || [[ -n $line ]]; do
    line_ts "$line"
    [[ -n $REPLY ]] || continue
    [[ $REPLY =~ $re_ts ]]
    wall_secs
    if [[ -z $newest ]] || ((REPLY > newest)); then newest=$REPLY; fi
  done <"$f"
done
printf -v now '%(%s)T' -1
delta=$((now - 1 - ${newest:-$now}))

# Pass 2: copy every file, line for line, with shifted timestamps.
for f in "${files[@]}"; do
  rel=${f#"$here"/}
  dst="$out/$rel"
  mkdir -p -- "${dst%/*}"
  {
    while IFS= read -r line || { [[ -n $line ]] && nonl=1; }; do
      line_ts "$line"
      if [[ -n $REPLY ]]; then
        old=$REPLY
        shift_ts "$old" "$delta"
        if [[ $line == "$old "* ]]; then
          line=$REPLY${line#"$old"}
        else
          [[ $line =~ $re_docker ]]
          line=${BASH_REMATCH[1]}$REPLY${BASH_REMATCH[3]}
        fi
      fi
      if [[ ${nonl:-} ]]; then printf '%s' "$line"; else printf '%s\n' "$line"; fi
      unset nonl
    done <"$f"
  } >"$dst"
done

# ---- promtail.yaml --------------------------------------------------------
q() { local s=${1//\'/\'\'}; REPLY="'$s'"; } # YAML single-quoted scalar

{
  q "$out/positions.yaml"; pos=$REPLY
  q "$out/pods"; pods=$REPLY
  cat <<EOF
# Written by examples/sample/generate.sh for the sample tree next to it:
#   target/release/tailtrace -config.file=$out/promtail.yaml -dry-run
# Labels: job, namespace, pod and container (one static target per container
# directory, as Kubernetes discovery would give them), stream, filename, and
# the client's external label cluster="sample". Lines carrying a trace ID
# get trace_id/span_id structured metadata (see them with -inspect).
kubernetes:
  pod_logs_path: $pods         # the pods job reads pod logs: trace detection on
server:
  http_listen_port: 0          # any free port
positions:
  filename: $pos
  sync_period: 1s
clients:
  - url: http://127.0.0.1:3100/loki/api/v1/push   # or -client.url=...
    tenant_id: sample
    batchwait: 1s
    batchsize: 1048576
    external_labels:
      cluster: sample
scrape_configs:
  - job_name: pods
    static_configs:
EOF
  for dir in "$out"/pods/*/*/; do
    dir=${dir%/}
    container=${dir##*/}
    poddir=${dir%/*}
    poddir=${poddir##*/}     # <namespace>_<pod>_<uid>
    namespace=${poddir%%_*}
    pod=${poddir#*_}
    pod=${pod%_*}
    q "$dir/*.log"
    cat <<EOF
      - targets: [localhost]
        labels:
          job: pods
          namespace: $namespace
          pod: $pod
          container: $container
          __path__: $REPLY
EOF
  done
  q "$out/docker/*.log"
  cat <<EOF
    pipeline_stages:
      - cri: {}
  - job_name: docker
    static_configs:
      - targets: [localhost]
        labels:
          job: docker
          __path__: $REPLY
    pipeline_stages:
      - docker: {}
EOF
} >"$out/promtail.yaml"

echo "generate.sh: wrote ${#files[@]} log files under $out (newest line one second ago) and $out/promtail.yaml"
