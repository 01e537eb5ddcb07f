#!/bin/bash
# GC gen0 A/B: W2 (5000 x 5/s, 20 s) and W4 on fresh stacks; label=env pairs, ROUNDS rounds.
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/gcab
for round in $(seq 1 ${ROUNDS:-2}); do
for spec in "$@"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  /tmp/up.sh $envs || exit 1
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W2 --subscribers 5000 --rate 5 --seconds 20 --target realtime --key-file .run/dev-signing-key --out /tmp/gcab --name W2-$label-r$round > /tmp/gcab/W2-$label-r$round.log 2>&1
  python3 -c "
import json;d=json.load(open('/tmp/gcab/W2-$label-r$round.json'));print('W2 $label r$round', 'cpu/M', d['cpuSecondsPerMillionDeliveries'], 'gw/M', d['gatewayOnlyCpuSecondsPerMillionDeliveries'], 'p50', d['latencyMs']['p50'], 'p99', d['latencyMs']['p99'], 'lost', d['lost'], [(p['name'][-4:],p['cpuSeconds'],p['peakRssMiB']) for p in d['processes']])"
  /tmp/up.sh $envs || exit 1
  python3 /tmp/stormsum.py > /tmp/gcab/$label-r$round.storm 2>&1 &
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W4 --target realtime --key-file .run/dev-signing-key --out /tmp/gcab --name W4-$label-r$round > /tmp/gcab/W4-$label-r$round.log 2>&1
  wait
  python3 -c "
import json;d=json.load(open('/tmp/gcab/W4-$label-r$round.json'));print('W4 $label r$round', d['reconnectedPercentilesSeconds'][3], d['reconnected95PercentSeconds'], d['reconnected100PercentSeconds'], 'failed', d['failedHandshakes'], 'lost', d['lost'], 'gw cpu', [p['cpuSeconds'] for p in d['processes'] if 'gateway' in p['name']])"
  cat /tmp/gcab/$label-r$round.storm
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
