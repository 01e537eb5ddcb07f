#!/bin/bash
# Generator A/B: the same stack (this checkout), W2 5000 x 10/s read by the old generator
# (ClientWebSocket, 1bf059d: git worktree add --detach /tmp/wt-old 1bf059d, built with
# dotnet build -c Release bench/Realtime.Bench) and by the new one (LoopbackWebSocket), each run
# on a stack started afresh, alternating order.
ulimit -n $(ulimit -Hn)
OUT=${OUT:-/tmp/gen-ab}; mkdir -p $OUT
ROOT=/work/main
run() { # bench-dll label args...
  local dll=$1 label=$2; shift 2
  cd $ROOT
  Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > $OUT/up-$label.log 2>&1 < /dev/null &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" $OUT/up-$label.log && break; sleep 1; done
  sleep 3
  timeout 900 dotnet $dll "$@" --target realtime --key-file $ROOT/.run/dev-signing-key --out $OUT --name $label > $OUT/$label.log 2>&1
  kill -TERM -- -$pid; sleep 10
}
OLD=/tmp/wt-old/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
NEW=$ROOT/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
W2="--workload W2 --subscribers 5000 --rate 10 --seconds 30"
run $OLD old-1 $W2
run $NEW new-1 $W2
run $NEW new-2 $W2
run $OLD old-2 $W2
echo finished > $OUT/finished
