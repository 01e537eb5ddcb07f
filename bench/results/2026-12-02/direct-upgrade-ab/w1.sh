#!/bin/bash
# w1.sh LABEL [NAME=VALUE ...] : starts the stack afresh with the given settings in its environment
# (./realtime.sh up with the benchmark's admission limits, e.g. Gateway__DirectWebSocketUpgrade=false),
# runs W1 for ours (10,000 then 19,000 idle WebSockets on gw-0), stops the stack, keeps LABEL.json
# here and prints ΔRSS / N, ΔPSS / N and the idle CPU of each step. Change 23 alternated labels.
dir="$(cd "$(dirname "$0")" && pwd)"
cd "$(git -C "$dir" rev-parse --show-toplevel)"
label=$1
shift
ulimit -n "$(ulimit -Hn)"
env Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 "$@" setsid ./realtime.sh up > "/tmp/w1-$label-up.log" 2>&1 < /dev/null &
stack=$!
for _ in $(seq 1 180); do grep -q "Ctrl-C stops" "/tmp/w1-$label-up.log" && break; sleep 1; done
timeout 400 dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W1 --target realtime \
  --key-file .run/dev-signing-key --out "$dir" --name "$label" > "/tmp/w1-$label.log" 2>&1
kill -TERM -- -"$stack"
wait "$stack"
python3 - "$dir/$label.json" "$label" <<'P'
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], [(r['connections'], r['rssKiBPerConnection'], r['pssKiBPerConnection'], r['idleCpuPercent']) for r in d['runs']])
P
