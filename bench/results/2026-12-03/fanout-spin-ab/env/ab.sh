#!/bin/bash
# Fanout thread-pool spinning A/B: W3 1000/s (fanout CPU and context switches) on fresh stacks.
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/fanab
for round in $(seq 1 ${ROUNDS:-2}); do
for spec in "$@"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  /tmp/up.sh $envs || exit 1
  f=$(pgrep -f "Realtime.Fanout.dll" | head -1)
  (/tmp/waitbusy.sh $f 5 && sleep 3 && python3 /tmp/threadcs.py $f 10 > /tmp/fanab/W3-$label-r$round.cs) &
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W3 --channels 10000 --rate 1000 --seconds 20 --target realtime --key-file .run/dev-signing-key --out /tmp/fanab --name W3-$label-r$round > /tmp/fanab/W3-$label-r$round.log 2>&1
  wait
  python3 -c "
import json;d=json.load(open('/tmp/fanab/W3-$label-r$round.json'));print('W3 $label r$round', 'cpu/M', d['cpuSecondsPerMillionDeliveries'], 'gw/M', d['gatewayOnlyCpuSecondsPerMillionDeliveries'], 'p50', d['latencyMs']['p50'], 'p99', d['latencyMs']['p99'], 'lost', d['lost'], [(p['name'][-6:],p['cpuSeconds']) for p in d['processes']])"
  head -4 /tmp/fanab/W3-$label-r$round.cs
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
