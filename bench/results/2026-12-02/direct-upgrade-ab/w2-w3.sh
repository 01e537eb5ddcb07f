#!/bin/bash
# W2 1000 x 100/s and W3 1,000/s, direct upgrade vs Kestrel's, alternating fresh stacks
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
S=bench/results/2026-12-02/fanout-writes-ab/one.sh
OUT=bench/results/2026-12-02/direct-upgrade-ab
for r in 1 2; do
  $S w2-direct-$r $OUT --workload W2 --subscribers 1000 --rate 100 --seconds 20
  Gateway__DirectWebSocketUpgrade=false $S w2-kestrel-$r $OUT --workload W2 --subscribers 1000 --rate 100 --seconds 20
done
for r in 1 2; do
  $S w3-direct-$r $OUT --workload W3 --channels 10000 --rate 1000 --seconds 20
  Gateway__DirectWebSocketUpgrade=false $S w3-kestrel-$r $OUT --workload W3 --channels 10000 --rate 1000 --seconds 20
done
