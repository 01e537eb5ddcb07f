#!/bin/bash
# W5 A/B: fanout with thread-pool spinning (as committed) vs ThreadPoolSpinCount=0 (csproj toggled), fresh stacks, alternating.
cd /work/main; ulimit -n $(ulimit -Hn); mkdir -p /tmp/w5spin
P=src/Fanout/Realtime.Fanout.csproj
for round in $(seq 1 ${ROUNDS:-2}); do
for label in spin nospin; do
  git checkout -q $P
  if [ $label = nospin ]; then sed -i 's#<ConcurrentGarbageCollection>true</ConcurrentGarbageCollection>#&\n    <ThreadPoolSpinCount>0</ThreadPoolSpinCount>#' $P; fi
  /tmp/up.sh || exit 1
  grep -o '"System.Threading.ThreadPool.UnfairSemaphoreSpinLimit": [0-9]*' src/Fanout/bin/Release/net10.0/Realtime.Fanout.runtimeconfig.json || echo "spin default"
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W5 --target realtime --key-file .run/dev-signing-key --out /tmp/w5spin --name W5-$label-r$round > /tmp/w5spin/W5-$label-r$round.log 2>&1
  python3 -c "
import json;d=json.load(open('/tmp/w5spin/W5-$label-r$round.json'));r=[x for x in d['runs'] if x['targetNodes']==10];print('W5 $label r$round', d['eventsPerSecondByTargetNodes'], 'fanout us/event at 10:', [x['fanoutCpuMicrosPerEvent'] for x in r], [x['eventsPerSecond'] for x in r])"
done; done
git checkout -q $P
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid
echo ab-done
