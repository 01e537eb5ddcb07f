#!/bin/bash
# measure.sh LABEL INVOCATIONS : on the stack running now (./realtime.sh up), runs W6 INVOCATIONS
# times and prints every catch-up (warm-up rounds included) with gw-1's CPU per invocation.
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
label=$1; n=${2:-4}
GW1=$(pgrep -f "NodeId=gw-1" | head -1)
for i in $(seq 1 $n); do
  c0=$(awk '{print $14+$15}' /proc/$GW1/stat)
  ms=$(timeout 300 dotnet bench/Realtime.Bench/bin/Release/net10.0/Realtime.Bench.dll --workload W6 --target realtime \
        --key-file .run/dev-signing-key --out /tmp/w6-$label --name w6-$label-$i 2>&1 \
        | grep -o "caught up in [0-9.]*\|catchUpMilliseconds\":[0-9.]*" | grep -o "[0-9.]*$" | tr '\n' ' ')
  c1=$(awk '{print $14+$15}' /proc/$GW1/stat)
  rounds=$(echo $ms | wc -w)
  echo "$label invocation $i: catch-ups ms: $ms| gw-1 CPU ms per catch-up: $(( (c1-c0)*10/rounds ))"
done
