#!/usr/bin/env bash
# A stop always ends: SIGTERM to each daemon in each state -- idle, under
# load, with its broker gone, while its peers reconnect -- must end the
# process, cleanly (exit 0), within 5 s. A node once logged "stopped" and
# never exited: its thread waited on libzmq's monitor lock at close while
# libzmq's I/O thread was blocked sending an event to the monitor's reader,
# closed first (libtern/src/zmon.h; tests/unit/test_zmon.c holds the
# deterministic case). Nothing accepted is lost on the way: every message the
# flood stored is delivered in the end.
source "$(dirname "$0")/lib.sh"
ROUNDS=${TERN_STOP_ROUNDS:-3}

# stop_within NAME STATE: SIGTERM, then at most 5 s for the exit; status 0.
stop_within() {
  local name=$1 state=$2 pid=${PIDS[$1]} t0=$SECONDS rc=0
  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "--- threads of the hung $name:" >&2
    gdb -p "$pid" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^#|^Thread' | head -60 >&2 || true
    kill -9 "$pid"
    fail "$name ($state) did not exit within 5 s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  unset "PIDS[$name]"
  [[ $rc -eq 0 ]] || fail "$name ($state) exited $rc after SIGTERM, want 0"
  say "  $name ($state): exited in $((SECONDS - t0)) s or less"
}

fed_make
start broker
start unhcr
start sweden
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

say "idle"
stop_within sweden idle
start sweden
wait_for 20 "sweden to connect" connected sweden
stop_within broker idle
start broker
wait_for 20 "unhcr to connect again" connected unhcr

TOTAL=0
for r in $(seq "$ROUNDS"); do
  say "round $r: under load"
  "$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden 600 "STOP$r" >"$WORK/flood$r.log" 2>&1 &
  FPID=$!
  TOTAL=$((TOTAL + 600))
  sleep 1
  stop_within sweden "under load"
  sleep 0.5
  stop_within broker "under load"
  sleep 0.5
  stop_within unhcr "under load, broker gone"
  start unhcr # the flood retries while it is down
  sleep 1
  say "round $r: broker gone, nodes reconnecting"
  start sweden
  sleep 2
  stop_within sweden "broker gone"
  start sweden
  start broker
  sleep 0.3 # the nodes' reconnects and Hellos arrive now
  stop_within broker "peers reconnecting"
  start broker
  sleep 0.3
  stop_within unhcr "reconnecting to a new broker"
  start unhcr
  wait "$FPID" || fail "the flood of round $r did not finish: $(tail -3 "$WORK/flood$r.log")"
done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
wait_for 120 "all $TOTAL delivered" count_is unhcr delivered "$TOTAL"
count_is sweden inbox "$TOTAL" || fail "sweden's inbox holds $(info_field sweden inbox), not $TOTAL"
say "all $TOTAL delivered, once each"
echo "it test_stop: ok"
