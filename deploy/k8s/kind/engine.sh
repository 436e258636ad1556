#!/usr/bin/env bash
# The project's own container engine: Debian's dockerd, private to this path.
#   engine.sh start   start it (reused when its pid file names a live dockerd)
#   engine.sh stop    stop the dockerd this script started, by its pid
#   engine.sh status  say whether it runs
# State, socket, pid file and log live in $KIND_CACHE/engine, outside the checkout.
#
# It touches nothing of the host's networking: --iptables=false and
# --ip-forward=false (no firewall rule, no forwarding, so no container traffic
# leaves the machine), --bridge=none (no docker0). The kind network's bridge is
# removed by `cluster.sh down` before the engine stops.
. "$(dirname "$0")/lib.sh"

[[ $KIND_IMAGES == local ]] || { log "KIND_IMAGES=public: the Docker engine of this machine is used"; exit 0; }
pidfile=$ENGINE_DIR/dockerd.pid
running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running && $DOCKER info >/dev/null 2>&1; then
    log "engine already running (pid $(cat "$pidfile"))"
    return
  fi
  bash "$KIND_DIR/host-deps.sh"
  mkdir -p "$ENGINE_DIR/bin" "$ENGINE_DIR/data" "$ENGINE_DIR/exec"
  install -m 0755 "$KIND_DIR/engine/runc-wrap" "$ENGINE_DIR/bin/runc-wrap"
  # The data root needs room for every image (about 8 GB) and the cluster.
  need_disk_gb 10 "the container engine"
  # What `stop` checks it leaves as found: forwarding and the firewall rules.
  host_state >"$ENGINE_DIR/host-before"
  log "starting the engine (dockerd, state in $ENGINE_DIR)"
  # setsid: the engine outlives this script and the make that ran it.
  setsid /usr/sbin/dockerd \
    --data-root "$ENGINE_DIR/data" \
    --exec-root "$ENGINE_DIR/exec" \
    --pidfile "$pidfile" \
    --host "$DOCKER_HOST" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    --storage-driver overlay2 \
    --add-runtime "runc-wrap=$ENGINE_DIR/bin/runc-wrap" --default-runtime runc-wrap \
    --default-address-pool base=172.28.0.0/16,size=24 \
    </dev/null >"$ENGINE_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 120); do
    if $DOCKER info >/dev/null 2>&1; then
      # Which start this is: cluster.sh reuses a cluster only if it was
      # created under the same one.
      echo "$(date +%s.%N) $(cat "$pidfile")" >"$ENGINE_DIR/generation"
      log "engine ready (pid $(cat "$pidfile"))"
      return
    fi
    kill -0 $! 2>/dev/null || break
    sleep 0.5
  done
  # A dockerd that is alive but never answered is stopped: nothing of a
  # failed start is left running.
  if kill -0 $! 2>/dev/null; then
    kill $! 2>/dev/null || true
    for _ in $(seq 20); do kill -0 $! 2>/dev/null || break; sleep 0.5; done
    kill -9 $! 2>/dev/null || true
  fi
  rm -f "$pidfile"
  tail -5 "$ENGINE_DIR/dockerd.log" >&2
  fail "container engine cannot start within 60 s (log: $ENGINE_DIR/dockerd.log)"
}

host_state() {
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  if command -v iptables-save >/dev/null 2>&1; then
    iptables-save 2>/dev/null | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]//'
  fi
  # nftables rules made without iptables (counters vary, so they are dropped).
  if command -v nft >/dev/null 2>&1; then
    nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
  fi
}

stop() {
  if ! running; then
    log "engine not running"
    rm -f "$pidfile"
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  log "stopping the engine (pid $pid)"
  kill "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    log "engine still running after 30 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  if [[ -f $ENGINE_DIR/host-before ]]; then
    if diff <(cat "$ENGINE_DIR/host-before") <(host_state) >"$ENGINE_DIR/host-diff"; then
      log "host as found: $(head -1 "$ENGINE_DIR/host-before"), firewall rules unchanged"
    else
      cat "$ENGINE_DIR/host-diff" >&2
      fail "the host's forwarding or firewall rules differ from before the engine started (above)"
    fi
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "engine running (pid $(cat "$pidfile"))"; else echo "engine stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
