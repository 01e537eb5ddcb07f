#!/bin/bash
# W5 A/B: old = 002e11c (before both changes 16 and 17) against new = 4e1c522 (after both), each on a stack started afresh.
ulimit -n $(ulimit -Hn)
OUT=${OUT:-/tmp/ab}; mkdir -p $OUT
# old and new are git worktrees: git worktree add --detach /tmp/wt-old <before>; git worktree add --detach /tmp/wt-new <after>; build each (dotnet build -c Release) first.
BENCH=/work/main/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
run() { # tree label args...
  local tree=$1 label=$2; shift 2
  cd $tree
  Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > $OUT/up-$label.log 2>&1 < /dev/null &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" $OUT/up-$label.log && break; sleep 1; done
  sleep 3
  timeout 900 dotnet $BENCH "$@" --target realtime --key-file $tree/.run/dev-signing-key --out $OUT --name $label > $OUT/$label.log 2>&1
  kill -TERM -- -$pid; sleep 10
}
for r in 1 2 3; do
  run /tmp/wt-old old-W5-$r --workload W5 --nodes 10,100 --repeats 6
  run /tmp/wt-new new-W5-$r --workload W5 --nodes 10,100 --repeats 6
done
echo finished > $OUT/finished

