#!/usr/bin/env bash
# `make run`'s demo (BIN, PORT and SIMULATE from make): migrate, seed, then daphne on
# 127.0.0.1:$PORT (dashboard_project.asgi_server: it drains before it stops), beside it the
# offline sweep and (SIMULATE=0 turns it off) the TTN simulator. Ctrl-C, or SIGTERM to make or
# to its process group, stops all three: each finishes what is in flight and exits 0, and so
# does this script. The trap forwards the first signal to the children only (`trap 'kill 0'
# EXIT INT TERM` signalled its own shell from inside its TERM trap, re-entering it until bash
# overflowed its stack: make's "Segmentation fault"); a signal that arrived before it can still
# cut one `wait` short, hence waiting again until each child is gone. A script rather than a
# nested make: a make stopped by a signal re-raises it on itself, and the outer one then prints
# an error although every process stopped cleanly.
set -u
"$BIN/python" manage.py migrate --noinput || exit
"$BIN/python" manage.py seed_demo || exit
echo ""
echo "  coldchain-dashboard: http://127.0.0.1:$PORT/   log in as demo / ${DEMO_PASSWORD:-demo} (admin: admin / ${ADMIN_PASSWORD:-admin})"
echo ""
pids=""
trap 'trap "" INT TERM; kill -TERM $pids 2>/dev/null' INT TERM
"$BIN/python" manage.py sweep_devices --every 60 >/dev/null &
pids=$!
if [ "$SIMULATE" != 0 ]; then
  "$BIN/python" manage.py simulate_ttn --url "http://127.0.0.1:$PORT" &
  pids="$pids $!"
fi
"$BIN/python" -m dashboard_project.asgi_server -b 127.0.0.1 -p "$PORT" --ping-interval 10 --ping-timeout 10 \
  dashboard_project.asgi:application &
pids="$pids $!"
wait -n
kill -TERM $pids 2>/dev/null
status=0
for pid in $pids; do
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  wait "$pid" || status=$?
done
exit $status
