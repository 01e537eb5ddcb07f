#!/bin/bash
# W3 after the batch write slicing (socket transport), fresh stacks, two rounds, 5,000 then 1,000 events/s.
cd /work/main; ulimit -n $(ulimit -Hn); OUT=${OUT:-/tmp/w3batch}; mkdir -p $OUT
B="dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --target realtime --key-file .run/dev-signing-key --out $OUT"
for round in ${ROUNDS:-1 2}; do
  for rate in ${RATES:-5000 1000}; do
    label=batch-slices
    /tmp/up.sh || exit 1
    $B --workload W3 --channels 10000 --rate $rate --seconds 20 --name W3-$label-$rate-r$round > $OUT/W3-$label-$rate-r$round.log 2>&1
    python3 -c "
import json;d=json.load(open('$OUT/W3-$label-$rate-r$round.json'));print('W3-$label-$rate-r$round','cpu/M',d['cpuSecondsPerMillionDeliveries'],'gw/M',d['gatewayOnlyCpuSecondsPerMillionDeliveries'],'p50',d['latencyMs']['p50'],'p99',d['latencyMs']['p99'],'lost',d['lost'],[(p['name'].split()[-1],p['cpuSeconds']) for p in d['processes']],'gen',d['generatorCpuShare'])"
  done
done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
