#!/bin/bash
# one.sh NAME OUTDIR bench-args...  : fresh stack, one bench run, stop
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
ulimit -n $(ulimit -Hn)
name=$1; out=$2; shift 2; mkdir -p $out
Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 setsid ./realtime.sh up > /tmp/up-$name.log 2>&1 < /dev/null &
pid=$!
for i in $(seq 1 300); do grep -q "Ctrl-C stops" /tmp/up-$name.log && break; sleep 1; done
sleep 3
timeout 900 dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll "$@" --target realtime --key-file .run/dev-signing-key --out $out --name $name > /tmp/$name.log 2>&1
GW=$(pgrep -f "NodeId=gw-0" | head -1)
for t in /proc/$GW/task/*; do c=$(cat $t/comm); case "$c" in ".NET Long"*) echo "${t##*/} $c $(cat $t/schedstat)";; esac; done > /tmp/$name.sched
kill -TERM -- -$pid; wait $pid 2>/dev/null; sleep 5
python3 -c "
import json
d=json.load(open('$out/$name.json')); print('$name', d['valid'], d['generatorCpuShare'], d['cpuSecondsPerMillionDeliveries'], d['gatewayOnlyCpuSecondsPerMillionDeliveries'], d['latencyMs'], d['lost'])"
