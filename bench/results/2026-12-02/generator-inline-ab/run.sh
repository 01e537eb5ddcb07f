#!/bin/bash
# Generator A/B: the same generator build, its sockets completing on the thread pool (the .NET
# default, DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0) or inline on the epoll thread (the
# generator's own default since change 18), on the workloads that were slower on 2026-12-02
# (W3 at 1,000/s, W6) and W2 5000 x 10/s. Ours only, each run on a stack started afresh,
# alternating order. Run from the repository root after a Release build of bench/.
ulimit -n $(ulimit -Hn)
OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)}
ROOT=$(pwd)
DLL=$ROOT/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
run() { # label inline(0|1) workload-args...
  local label=$1 inline=$2; shift 2
  Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > $OUT/up-$label.log 2>&1 < /dev/null &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" $OUT/up-$label.log && break; sleep 1; done
  sleep 3
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=$inline timeout 900 dotnet $DLL "$@" \
    --target realtime --key-file $ROOT/.run/dev-signing-key --out $OUT --name $label > $OUT/$label.log 2>&1
  kill -TERM -- -$pid; wait $pid 2>/dev/null; sleep 5
  rm -f $OUT/up-$label.log
}
W3="--workload W3 --channels 10000 --rate 1000 --seconds 20"
W2="--workload W2 --subscribers 5000 --rate 10 --seconds 30"
for round in 1 2; do
  run W3-thread-pool-$round 0 $W3
  run W3-inline-$round 1 $W3
  run W6-inline-$round 1 --workload W6
  run W6-thread-pool-$round 0 --workload W6
done
run W2-thread-pool-1 0 $W2
run W2-inline-1 1 $W2
