#!/usr/bin/env bash
# Runs COMMAND (`make run`'s demo) with a Redis to talk to. When nothing answers at REDIS_URL
# (default redis://127.0.0.1:6379), it starts a private redis-server on a free loopback port,
# keeping nothing on disk (its log: var/redis/redis.log), points REDIS_URL at it for COMMAND and
# stops it once COMMAND has exited. It runs in a session of its own, so Ctrl-C or a SIGTERM to
# the demo's process group stops the demo's processes first and Redis outlives their shutdown.
# Debian's redis-server is installed first when it is missing (root only). Under
# REDIS_SENTINELS, or when Redis answers, COMMAND just runs.
#   ops/demo-redis.sh PYTHON COMMAND...
set -euo pipefail
python=$1
shift
# Prints nothing when Redis answers at the demo's REDIS_URL; else that URL and a free port.
probe=$("$python" - <<'EOF'
import socket

import redis

from dashboard_project.settings import REDIS_SENTINELS, REDIS_URL

try:
    if not REDIS_SENTINELS:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
except redis.RedisError:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        print(REDIS_URL, sock.getsockname()[1])
EOF
)
[ -n "$probe" ] || exec "$@"
read -r unanswered port <<<"$probe"
bash ops/apt-install.sh redis-server:redis-server
mkdir -p var/redis
setsid redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis.log" --daemonize no &
pid=$!
trap 'if kill "$pid" 2>/dev/null; then wait "$pid" || true; echo "  stopped the private Redis (pid $pid)"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "the private Redis did not start on 127.0.0.1:$port; var/redis/redis.log says:" >&2
  tail -5 var/redis/redis.log >&2
  exit 1
fi
export REDIS_URL="redis://127.0.0.1:$port"
echo "  nothing answered at $unanswered: started a private Redis at $REDIS_URL (pid $pid; nothing kept on disk)"
# From here a signal stops COMMAND: a group's signal reaches it anyway, make's SIGTERM (sent to
# this script only) is passed on. The script ends with COMMAND's status, so a clean stop of the
# demo is a clean stop of make. (COMMAND runs in the background to let the trap run at once; it
# then ignores SIGINT, as bash starts background jobs, hence SIGTERM for both.)
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM
while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
status=0
wait "$child" || status=$?
exit $status
