#!/bin/bash
# A/B of Kafka:FetchWaitMaxMs / LingerMs on the embedded stack: idle CPU for 20 s, then W3 1000/s.
ulimit -n $(ulimit -Hn)
BENCH=/work/main/bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll
cd /work/main
run() { # label fetchwait linger
  local label=$1
  Kafka__FetchWaitMaxMs=$2 Kafka__LingerMs=$3 Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > /tmp/lat/up-$label.log 2>&1 < /dev/null &
  local pid=$!
  for i in $(seq 1 180); do grep -q "Ctrl-C stops" /tmp/lat/up-$label.log && break; sleep 1; done
  sleep 5
  # idle CPU of every stack process over 20 s
  pids=$(pgrep -g $pid -f 'dotnet|redis-server' | tr '\n' ' ')
  declare -A a; for p in $pids; do a[$p]=$(awk '{print $14+$15}' /proc/$p/stat); done
  sleep 20
  tot=0; for p in $pids; do b=$(awk '{print $14+$15}' /proc/$p/stat); d=$((b-${a[$p]})); tot=$((tot+d)); echo "$label idle $(tr '\0' ' ' < /proc/$p/cmdline | grep -o 'Realtime\.[A-Za-z]*\.dll\|redis-server\|InstanceId=[a-z0-9-]*\|NodeId=[a-z0-9-]*' | head -2 | tr '\n' ' ') $d ticks"; done
  echo "$label idle total $tot ticks/20s (100 ticks = 1 core-s)"
  timeout 300 dotnet $BENCH --workload W3 --target realtime --key-file .run/dev-signing-key --out /tmp/lat --name $label --channels 10000 --rate 1000 --seconds 20 > /tmp/lat/$label.log 2>&1
  kill -TERM -- -$pid; sleep 10
}
for r in 1 2; do
run fw5-l1-$r 5 1
run fw1-l1-$r 1 1
run fw2-l0-$r 2 0
run fw1-l0-$r 1 0
done
echo finished > /tmp/lat/finished
