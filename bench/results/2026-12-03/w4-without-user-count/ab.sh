#!/bin/bash
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/w4x
for round in 1 2; do for spec in "count=-" "skip=EXPERIMENT_SKIP_USER_COUNT=1"; do
  label=${spec%%=*}; envs=${spec#*=}; [ "$envs" = "-" ] && envs=
  /tmp/up.sh $envs || exit 1
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W4 --target realtime --key-file .run/dev-signing-key --out /tmp/w4x --name W4-$label-r$round > /tmp/w4x/W4-$label-r$round.log 2>&1
  python3 -c "
import json;d=json.load(open('/tmp/w4x/W4-$label-r$round.json'));print('$label r$round median', d['reconnected100PercentSeconds'], 'storms', [s['reconnected100PercentSeconds'] for s in d['storms']], 'lost', d['lost'], [(p['name'][-4:],p['cpuSeconds']) for p in d['processes']])"
done; done
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid; echo done
