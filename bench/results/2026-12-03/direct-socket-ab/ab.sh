#!/bin/bash
# Direct socket transport A/B: W1, W2 (5000 x 5/s and 1000 x 100/s, 20 s), W3 1000/s and W4 (3 storms),
# each on a fresh stack; labels: socket (default) and kestrel (Gateway__DirectSocketTransport=false).
cd /work/main; ulimit -n $(ulimit -Hn); OUT=${OUT:-/tmp/sockab}; mkdir -p $OUT
B="dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --target realtime --key-file .run/dev-signing-key --out $OUT"
summ() { python3 - "$1" <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); n=sys.argv[1].split('/')[-1][:-5]
procs=[(p['name'].split()[-1],p['cpuSeconds']) for p in d['processes']]
if d['workload']=='W1': print(n,[(r['connections'],r['rssKiBPerConnection'],r['pssKiBPerConnection'],r['idleCpuPercent']) for r in d['runs']])
elif d['workload']=='W4': print(n,'median',d['reconnected100PercentSeconds'],'storms',[s['reconnected100PercentSeconds'] for s in d['storms']],'failed',d['failedHandshakes'],'lost',d['lost'],procs,'gen',d['generatorCpuShare'])
else: print(n,'cpu/M',d['cpuSecondsPerMillionDeliveries'],'gw/M',d['gatewayOnlyCpuSecondsPerMillionDeliveries'],'p50',d['latencyMs']['p50'],'p99',d['latencyMs']['p99'],'lost',d['lost'],procs,'gen',d['generatorCpuShare'])
PY
}
for round in $(seq 1 ${ROUNDS:-2}); do
for spec in "socket=-" "kestrel=Gateway__DirectSocketTransport=false"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  /tmp/up.sh $envs || exit 1
  $B --workload W1 --name W1-$label-r$round > $OUT/W1-$label-r$round.log 2>&1; summ $OUT/W1-$label-r$round.json
  /tmp/up.sh $envs || exit 1
  $B --workload W2 --subscribers 5000 --rate 5 --seconds 20 --name W2-$label-5000x5-r$round > $OUT/W2a-$label-r$round.log 2>&1; summ $OUT/W2-$label-5000x5-r$round.json
  /tmp/up.sh $envs || exit 1
  $B --workload W2 --subscribers 1000 --rate 100 --seconds 20 --name W2-$label-1000x100-r$round > $OUT/W2b-$label-r$round.log 2>&1; summ $OUT/W2-$label-1000x100-r$round.json
  /tmp/up.sh $envs || exit 1
  $B --workload W4 --name W4-$label-r$round > $OUT/W4-$label-r$round.log 2>&1; summ $OUT/W4-$label-r$round.json
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
