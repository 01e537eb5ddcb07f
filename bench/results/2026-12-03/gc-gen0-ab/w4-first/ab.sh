#!/bin/bash
# W4 A/B on fresh stacks with storm CPU: label=env pairs alternate, ROUNDS rounds.
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/w4gc
for round in $(seq 1 ${ROUNDS:-2}); do
for spec in "$@"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  /tmp/up.sh $envs || exit 1
  python3 /tmp/stormsum.py > /tmp/w4gc/$label-r$round.storm 2>&1 &
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W4 --target realtime --key-file .run/dev-signing-key --out /tmp/w4gc --name W4-$label-r$round > /tmp/w4gc/W4-$label-r$round.log 2>&1
  wait
  python3 -c "
import json;d=json.load(open('/tmp/w4gc/W4-$label-r$round.json'));print('$label r$round', d['reconnectedPercentilesSeconds'][3], d['reconnected95PercentSeconds'], d['reconnected100PercentSeconds'], 'failed', d['failedHandshakes'], 'lost', d['lost'])"
  cat /tmp/w4gc/$label-r$round.storm
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
