#!/usr/bin/env bash
# Benchmark peers (issue 7): builds and starts, or stops, one peer on loopback.
#
#   bench/peers/peers.sh start signalr|socketio <run-dir>
#   bench/peers/peers.sh stop  signalr|socketio <run-dir>
#
# A peer is one dedicated redis-server and two server instances (like our two gateways):
#
#   signalr   ASP.NET Core SignalR + Microsoft.AspNetCore.SignalR.StackExchangeRedis
#             servers 127.0.0.1:8280 and :8281 (hub /hub), redis-server 127.0.0.1:6480
#   socketio  Socket.IO 4 + @socket.io/redis-adapter (redis client)
#             servers 127.0.0.1:8380 and :8381 (/socket.io/), redis-server 127.0.0.1:6481
#
# `start` builds the peer (dotnet build -c Release / npm ci when node_modules is missing), starts
# everything in the background with logs in <run-dir>, waits until each process answers, and
# writes <run-dir>/<peer>.pids ("<name> <pid>" lines: server-0, server-1, redis-server), which the
# load generator reads (--target <peer> --peer-run-dir <run-dir>) to measure CPU and memory.
# `stop` sends TERM to exactly those pids, then KILL to whatever is left after a bounded wait.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIGURATION="${CONFIGURATION:-Release}"
READY_SECONDS="${PEERS_READY_SECONDS:-60}"
STOP_SECONDS="${PEERS_STOP_SECONDS:-15}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

SIGNALR_PROJECT="$HERE/SignalR/Realtime.Bench.SignalRPeer.csproj"
SIGNALR_DLL="$HERE/SignalR/bin/$CONFIGURATION/net10.0/Realtime.Bench.SignalRPeer.dll"
SOCKETIO_DIR="$HERE/socketio"

say() { printf 'peers.sh: %s\n' "$*"; }
die() { printf 'peers.sh: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: peers.sh start|stop signalr|socketio <run-dir>"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# What each peer runs on; sets REDIS_PORT and SERVER_PORTS.
REDIS_PORT=
SERVER_PORTS=()
peer_ports() { # <peer>
  case "$1" in
    signalr) REDIS_PORT=6480; SERVER_PORTS=(8280 8281) ;;
    socketio) REDIS_PORT=6481; SERVER_PORTS=(8380 8381) ;;
    *) usage ;;
  esac
}

require() { # <command> <hint>
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH: $2"
}

# The command line a pid from the pids file must still have, so a reused pid is never signalled.
expected_cmdline() { # <peer> <name>
  case "$2" in
    redis-server) printf 'redis-server' ;;
    server-*) if [ "$1" = signalr ]; then printf 'Realtime.Bench.SignalRPeer.dll'; else printf '%s' "$SOCKETIO_DIR/server.js"; fi ;;
    *) ;; # unknown names match nothing
  esac
}

is_ours() { # <peer> <name> <pid>: alive and still the process we started
  local want cmdline
  want="$(expected_cmdline "$1" "$2")"
  [ -n "$want" ] || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$3/cmdline")" || return 1
  [[ "$cmdline" == *"$want"* ]]
}

# --- stop -------------------------------------------------------------------------------------
terminate() { # <peer> <seconds> <name=pid>...: TERM, wait up to <seconds>, then KILL
  local peer="$1" seconds="$2" entry name pid
  shift 2
  local alive=()
  for entry in "$@"; do
    name="${entry%%=*}"; pid="${entry#*=}"
    if is_ours "$peer" "$name" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      alive+=("$entry")
    fi
  done
  local deadline=$((SECONDS + seconds))
  for entry in ${alive[@]+"${alive[@]}"}; do
    name="${entry%%=*}"; pid="${entry#*=}"
    while is_ours "$peer" "$name" "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if is_ours "$peer" "$name" "$pid"; then
      say "$name (pid $pid) did not stop within $seconds s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

stop_peer() { # <peer> <run-dir>
  local peer="$1" run="$2" file="$2/$1.pids" name pid
  [ -f "$file" ] || { say "$peer: nothing to stop (no $file)"; return 0; }
  local servers=() backbone=()
  while read -r name pid; do
    if [ -z "${name:-}" ] || ! [[ "${pid:-}" =~ ^[0-9]+$ ]]; then continue; fi
    if [[ "$name" == server* ]]; then servers+=("$name=$pid"); else backbone+=("$name=$pid"); fi
  done <"$file"
  # Servers first, so they do not spend their shutdown reconnecting to a stopped Redis.
  terminate "$peer" "$STOP_SECONDS" ${servers[@]+"${servers[@]}"}
  terminate "$peer" "$STOP_SECONDS" ${backbone[@]+"${backbone[@]}"}
  rm -f "$file"
  say "$peer stopped (logs in $run)"
}

# --- start ------------------------------------------------------------------------------------
STARTING_PEER=
STARTING_RUN=
abort_start() { # a failed start leaves nothing running
  local status=$?
  trap - EXIT
  if [ "$status" -ne 0 ] && [ -n "$STARTING_PEER" ]; then
    say "start failed: stopping what was started"
    stop_peer "$STARTING_PEER" "$STARTING_RUN" || true
  fi
  exit "$status"
}

launch() { # <peer> <run-dir> <name> <command...>: background, detached from the terminal, logged
  local peer="$1" run="$2" name="$3"
  shift 3
  local log="$run/$peer-$name.log"
  : >"$log"
  nohup "$@" </dev/null >>"$log" 2>&1 &
  printf '%s %s\n' "$name" "$!" >>"$run/$peer.pids"
  LAUNCHED_PID=$!
}

wait_until() { # <peer> <run-dir> <name> <pid> <probe command...>: bounded wait for the probe to succeed
  local peer="$1" run="$2" name="$3" pid="$4"
  shift 4
  local deadline=$((SECONDS + READY_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$run/$peer-$name.log" >&2 || true
      die "$peer $name (pid $pid) exited while starting (log: $run/$peer-$name.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$run/$peer-$name.log" >&2 || true
      die "$peer $name (pid $pid) did not answer within $READY_SECONDS s (log: $run/$peer-$name.log)"
    fi
    sleep 0.5
  done
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
signalr_ready() { curl -fsS --max-time 5 -o /dev/null --data '' "http://127.0.0.1:$1/hub/negotiate?negotiateVersion=1"; }
socketio_ready() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$1/socket.io/?EIO=4&transport=polling"; }

build_peer() { # <peer>
  case "$1" in
    signalr)
      require dotnet "the .NET 10 SDK is required"
      say "building $SIGNALR_PROJECT ($CONFIGURATION)..."
      timeout 900 dotnet build "$SIGNALR_PROJECT" -c "$CONFIGURATION" --nologo -v quiet -clp:ErrorsOnly \
        || die "build of the SignalR peer failed"
      ;;
    socketio)
      require node "install Node.js 20 or later (Debian: apt-get install nodejs npm)"
      require npm "install npm (Debian: apt-get install npm)"
      if [ ! -d "$SOCKETIO_DIR/node_modules" ]; then
        say "installing the Socket.IO peer's packages (npm ci)..."
        (cd "$SOCKETIO_DIR" && timeout 600 npm ci --no-audit --no-fund) || die "npm ci failed in $SOCKETIO_DIR"
      fi
      ;;
  esac
}

start_peer() { # <peer> <run-dir>
  local peer="$1" run="$2" name pid port i
  peer_ports "$peer"
  require redis-server "install Debian's redis-server (apt-get install redis-server)"
  require redis-cli "install Debian's redis-tools (apt-get install redis-tools)"
  require curl "install curl (apt-get install curl)"
  mkdir -p "$run"
  run="$(cd "$run" && pwd)"
  if [ -f "$run/$peer.pids" ]; then
    while read -r name pid; do
      if [[ "${pid:-}" =~ ^[0-9]+$ ]] && is_ours "$peer" "$name" "$pid"; then
        die "$peer is already running ($name pid $pid); stop it first: peers.sh stop $peer $run"
      fi
    done <"$run/$peer.pids"
    rm -f "$run/$peer.pids"
  fi
  for port in "$REDIS_PORT" "${SERVER_PORTS[@]}"; do
    ! port_busy "$port" || die "port 127.0.0.1:$port is in use; stop whatever holds it"
  done

  build_peer "$peer"

  # As many open files as this user may have: every connection is a descriptor.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  say "open files limit for the $peer processes: $(ulimit -n)"

  STARTING_PEER="$peer"
  STARTING_RUN="$run"
  trap abort_start EXIT
  : >"$run/$peer.pids"

  launch "$peer" "$run" redis-server redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --save '' --appendonly no --dir "$run"
  wait_until "$peer" "$run" redis-server "$LAUNCHED_PID" redis_ready "$REDIS_PORT"

  local pids=()
  for i in "${!SERVER_PORTS[@]}"; do
    port="${SERVER_PORTS[$i]}"
    if [ "$peer" = signalr ]; then
      # Production environment, default GC (server GC, from the Sdk.Web runtimeconfig); the content
      # root is the project folder, so no appsettings.json from the caller's directory is picked up.
      launch "$peer" "$run" "server-$i" dotnet "$SIGNALR_DLL" --contentRoot "$HERE/SignalR" \
        --urls "http://127.0.0.1:$port" --Redis "127.0.0.1:$REDIS_PORT"
    else
      launch "$peer" "$run" "server-$i" env HOST=127.0.0.1 PORT="$port" \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$SOCKETIO_DIR/server.js"
    fi
    pids+=("$LAUNCHED_PID")
  done
  for i in "${!SERVER_PORTS[@]}"; do
    wait_until "$peer" "$run" "server-$i" "${pids[$i]}" "${peer}_ready" "${SERVER_PORTS[$i]}"
  done

  trap - EXIT
  say "$peer is up: servers ${SERVER_PORTS[*]/#/127.0.0.1:}, redis-server 127.0.0.1:$REDIS_PORT"
  say "pids in $run/$peer.pids, logs in $run/$peer-*.log"
}

# --- main -------------------------------------------------------------------------------------
[ $# -eq 3 ] || usage
command="$1" peer="$2" run_dir="$3"
peer_ports "$peer"
case "$command" in
  start) start_peer "$peer" "$run_dir" ;;
  stop) stop_peer "$peer" "$run_dir" ;;
  *) usage ;;
esac
