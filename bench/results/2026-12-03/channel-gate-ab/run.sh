#!/bin/bash
# W4 on fresh stacks, alternating the channel hub with a lock-free join (new, the working tree)
# and with every join and leave through the channel's async gate (old, c36399d's ChannelHub.cs).
# Usage: run.sh OUTDIR ROUNDS. Uses /tmp/up.sh (starts ./realtime.sh up with the bench's admission limits).
cd /work/main
OUT=${1:-/tmp/gate-ab}; ROUNDS=${2:-2}; mkdir -p $OUT
cp src/Gateway/Routing/ChannelHub.cs /tmp/ChannelHub.new.cs
git show c36399d:src/Gateway/Routing/ChannelHub.cs > /tmp/ChannelHub.old.cs
for round in $(seq 1 $ROUNDS); do for label in new old; do
  cp /tmp/ChannelHub.$label.cs src/Gateway/Routing/ChannelHub.cs
  /tmp/up.sh || exit 1
  dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W4 --target realtime --key-file .run/dev-signing-key --out $OUT --name W4-$label-r$round > $OUT/W4-$label-r$round.log 2>&1
  python3 -c "
import json;d=json.load(open('$OUT/W4-$label-r$round.json'));print('$label r$round median', d['reconnected100PercentSeconds'], '95%', d['reconnected95PercentSeconds'], 'storms', [s['reconnected100PercentSeconds'] for s in d['storms']], 'pct', d['reconnectedPercentilesSeconds'], 'lost', d['lost'], 'gen', d['generatorCpuShare'], [(p['name'][-4:],p['cpuSeconds']) for p in d['processes']])"
done; done
cp /tmp/ChannelHub.new.cs src/Gateway/Routing/ChannelHub.cs
kill -TERM -- -$(cat /tmp/up.pid); rm -f /tmp/up.pid; echo done
