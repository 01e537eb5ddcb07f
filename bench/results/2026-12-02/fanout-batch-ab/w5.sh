#!/bin/bash
# w5.sh LABEL : on the stack running now (./realtime.sh up, started with e.g. Fanout__MaxBatchSize=5000
# in its environment), runs W5 at 10 target nodes 5 times (after the workload's own warm-up rounds)
# and prints events/s per run with the CPU per event of the fanout, the embedded broker and Redis.
# Change 21 ran it twice per stack and compared the second invocation.
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
label=$1
timeout 400 dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W5 --nodes 10 --repeats 5 \
  --target realtime --key-file .run/dev-signing-key --out /tmp/w5 --name "$label" > "/tmp/w5-$label.log" 2>&1
python3 - "$label" <<'P'
import json, sys, statistics
d = json.load(open(f'/tmp/w5/{sys.argv[1]}.json'))
runs = d['runs']
print(sys.argv[1], 'events/s', [r['eventsPerSecond'] for r in runs], 'median', statistics.median([r['eventsPerSecond'] for r in runs]))
print('  fanout µs/event', [r['fanoutCpuMicrosPerEvent'] for r in runs])
for name in ('kafka (embedded)', 'redis-server'):
    print(' ', name, 'µs/event', [round(next(p['cpuSeconds'] for p in r['processes'] if p['name'] == name) / r['events'] * 1e6, 1) for r in runs])
P
