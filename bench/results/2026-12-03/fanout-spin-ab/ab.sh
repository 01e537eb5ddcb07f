#!/bin/bash
# Fanout ThreadPoolSpinCount=0 A/B (csproj toggled): W3 1000/s and W5 on fresh stacks, alternating.
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/spinab
P=src/Fanout/Realtime.Fanout.csproj
for round in $(seq 1 ${ROUNDS:-2}); do
for label in nospin spin; do
  git checkout -q $P
  if [ $label = nospin ]; then sed -i 's#<ConcurrentGarbageCollection>true</ConcurrentGarbageCollection>#&\n    <ThreadPoolSpinCount>0</ThreadPoolSpinCount>#' $P; fi
  /tmp/up.sh || exit 1
  f=$(pgrep -f "Realtime.Fanout.dll" | head -1)
  (/tmp/waitbusy.sh $f 5 && sleep 3 && python3 /tmp/threadcs.py $f 10 > /tmp/spinab/W3-$label-r$round.cs) &
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W3 --channels 10000 --rate 1000 --seconds 20 --target realtime --key-file .run/dev-signing-key --out /tmp/spinab --name W3-$label-r$round > /tmp/spinab/W3-$label-r$round.log 2>&1
  wait
  python3 -c "
import json;d=json.load(open('/tmp/spinab/W3-$label-r$round.json'));print('W3 $label r$round', 'cpu/M', d['cpuSecondsPerMillionDeliveries'], 'gw/M', d['gatewayOnlyCpuSecondsPerMillionDeliveries'], 'p50', d['latencyMs']['p50'], 'p99', d['latencyMs']['p99'], 'lost', d['lost'], [(p['name'][-6:],p['cpuSeconds']) for p in d['processes']])"
  head -2 /tmp/spinab/W3-$label-r$round.cs | tail -1
  /tmp/up.sh || exit 1
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W5 --target realtime --key-file .run/dev-signing-key --out /tmp/spinab --name W5-$label-r$round > /tmp/spinab/W5-$label-r$round.log 2>&1
  python3 -c "
import json;d=json.load(open('/tmp/spinab/W5-$label-r$round.json'));r=[x for x in d['runs'] if x['targetNodes']==10];print('W5 $label r$round', d['eventsPerSecondByTargetNodes'], 'fanout us/event at 10:', [x['fanoutCpuMicrosPerEvent'] for x in r], [x['eventsPerSecond'] for x in r])"
done; done
git checkout -q $P
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
