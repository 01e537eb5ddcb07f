#!/bin/bash
# Direct socket transport A/B for W3 (10,000 channels, 5,000 and 1,000 events/s, 20 s), fresh stacks, alternating.
cd /work/main; ulimit -n $(ulimit -Hn); OUT=${OUT:-/tmp/w3ab2}; mkdir -p $OUT
B="dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --target realtime --key-file .run/dev-signing-key --out $OUT"
for round in 1 2; do
for spec in "socket=-" "kestrel=Gateway__DirectSocketTransport=false"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  for rate in 5000 1000; do
    /tmp/up.sh $envs || exit 1
    $B --workload W3 --channels 10000 --rate $rate --seconds 20 --name W3-$label-$rate-r$round > $OUT/W3-$label-$rate-r$round.log 2>&1
    python3 -c "
import json;d=json.load(open('$OUT/W3-$label-$rate-r$round.json'));print('W3-$label-$rate-r$round','cpu/M',d['cpuSecondsPerMillionDeliveries'],'gw/M',d['gatewayOnlyCpuSecondsPerMillionDeliveries'],'p50',d['latencyMs']['p50'],'p99',d['latencyMs']['p99'],'lost',d['lost'],[(p['name'].split()[-1],p['cpuSeconds']) for p in d['processes']],'gen',d['generatorCpuShare'])"
  done
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
