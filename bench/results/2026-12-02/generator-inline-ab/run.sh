#!/bin/bash
# Generator A/B: the same generator build, its sockets completing on the thread pool (the .NET
# default, DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0) or inline on the epoll thread (the
# generator's own default since change 18). W2 5000 x 10/s on ours, each run on a stack started
# afresh, alternating order. Run from the repository root after a Release build of bench/.
ulimit -n $(ulimit -Hn)
OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)}
ROOT=$(pwd)
DLL=$ROOT/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
run() { # label inline(0|1)
  local label=$1 inline=$2
  Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > $OUT/up-$label.log 2>&1 < /dev/null &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" $OUT/up-$label.log && break; sleep 1; done
  sleep 3
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=$inline timeout 900 dotnet $DLL --workload W2 --subscribers 5000 --rate 10 --seconds 30 \
    --target realtime --key-file $ROOT/.run/dev-signing-key --out $OUT --name $label > $OUT/$label.log 2>&1
  kill -TERM -- -$pid; wait $pid 2>/dev/null; sleep 5
  rm -f $OUT/up-$label.log
}
run thread-pool-1 0
run inline-1 1
run inline-2 1
run thread-pool-2 0
